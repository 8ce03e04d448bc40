"""Shared by the framework tests, which import it as a top-level module: verl and OpenRLHF each
install a top-level `tests` package of their own that shadows ours in their venvs."""

from __future__ import annotations

REF = "The heart size is normal. No pleural effusion."
RESPONSES = ["<report>The heart size is normal. No pleural effusion.</report>", "Heart is enlarged.", ""]


def byte_tokenizer():
    """A byte-level BPE tokenizer whose decode gives back the text exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([REF, *RESPONSES, "Describe the X-ray."], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
