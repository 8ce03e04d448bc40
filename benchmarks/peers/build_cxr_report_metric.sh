#!/usr/bin/env bash
# Reference environment for RadCliQ-v0/-v1 composite parity (benchmarks/peers/cxr_report_metric_composite.py):
# CXR-Report-Metric's composite step needs only numpy + scikit-learn to load its pickled
# StandardScaler / LinearRegression / CompositeMetric. Its own pickles come from a checkout of
# github.com/rajpurkarlab/CXR-Report-Metric (CXRMetric/{normalizer,composite_metric_model,radcliq-v1}.pkl),
# passed on the command line; nothing is downloaded by radeval.
#
#   bash benchmarks/peers/build_cxr_report_metric.sh     # -> ~/.cache/radeval-peers/cxr-report-metric
set -euo pipefail
VENV="${RADEVAL_PEERS_DIR:-$HOME/.cache/radeval-peers}/cxr-report-metric"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "numpy==2.4.6" "scikit-learn==1.9.1"
"$VENV/bin/python" -c "import numpy, sklearn; print('$VENV', numpy.__version__, sklearn.__version__)"
