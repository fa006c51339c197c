"""Issue 12 item 5: truncating a long prompt keeps its text intact, with one warning."""

import warnings

from scenedreamer.priors.diffusion import truncate_prompt
from tests.tiny_models import tiny_tokenizer


def test_long_prompt_with_exclamation_marks_keeps_them(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path, model_max_length=16)
    # The SD 2 tokenizer pads with "!"; make ours do the same so that skip_special_tokens would drop them.
    tokenizer.pad_token = "!"
    prompt = "wow! a lake! " * 10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = truncate_prompt(prompt, tokenizer, "tiny")
    assert len(caught) == 1 and "cut" in str(caught[0].message)
    assert kept.count("!") >= 2
    assert prompt.replace(" ", "").startswith(kept.replace(" ", ""))
    # The kept text fits: start + kept + end tokens <= the limit.
    assert len(tokenizer(kept)["input_ids"]) <= 16


def test_short_prompt_unchanged(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path, model_max_length=77)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert truncate_prompt("a lake!", tokenizer, "tiny") == "a lake!"
