"""CXR-Report-Metric's composite step, run in its reference venv (build_cxr_report_metric.sh).

    python cxr_report_metric_composite.py CXR_REPORT_METRIC_DIR FEATURES.json OUT.json

Loads the repository's own pickles exactly as its ``CXRMetric/run_eval.py`` does (the
StandardScaler ``normalizer.pkl`` + LinearRegression ``composite_metric_model.pkl`` for
RadCliQ-v0; the ``CompositeMetric`` object ``radcliq-v1.pkl`` for RadCliQ-v1) and applies
them to the feature rows (columns radgraph_combined, bertscore, semb_score, bleu_score).
Only for parity checks: it unpickles files from a checkout you chose.
"""

import json
import pickle
import sys
import warnings

import numpy as np


class CompositeMetric:
    """Stand-in for the class run_eval.py pickled as ``__main__.CompositeMetric``:
    scale with the stored scaler, append a 1, dot with the stored coefficients."""

    def predict(self, x):
        z = self.scaler.transform(x)
        return np.concatenate((z, np.ones((z.shape[0], 1))), axis=1) @ self.coefs


def main(root: str, features: str, out: str) -> None:
    sys.modules["__main__"].CompositeMetric = CompositeMetric
    x = np.array(json.load(open(features))["features"], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn 1.1.1 pickles: version warnings
        with open(f"{root}/CXRMetric/normalizer.pkl", "rb") as f:
            normalizer = pickle.load(f)
        with open(f"{root}/CXRMetric/composite_metric_model.pkl", "rb") as f:
            v0_model = pickle.load(f)
        with open(f"{root}/CXRMetric/radcliq-v1.pkl", "rb") as f:
            v1_model = pickle.load(f)
        v0 = v0_model.predict(normalizer.transform(x))
        v1 = v1_model.predict(x)
    json.dump({"radcliq_v0": v0.tolist(), "radcliq_v1": v1.tolist()}, open(out, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
