"""Tokenization without PyTorch: padding side, pad id, lengths, truncation, vocab.txt folders."""
from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from padlens.errors import BadInput
from padlens.inspector.inputs.tokenize import load_tokenizer, pad_rows

SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "[PAD]"]  # pad deliberately not id 0
WORDS = ["this", "is", "a", "sample", "sentence", "cat", "sat", "on", "the", "mat", "play", "##ing"]
ID = {t: i for i, t in enumerate(SPECIALS + WORDS)}
CLS, SEP, PAD, CAT = ID["[CLS]"], ID["[SEP]"], ID["[PAD]"], ID["cat"]


def write_tokenizer(folder, config: dict | None = None, specials=SPECIALS):
    """A BERT-like WordPiece tokenizer saved as tokenizer.json (+ optional tokenizer_config.json)."""
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return vocab


@pytest.fixture
def tok_dir(tmp_path):
    folder = tmp_path / "tok"
    write_tokenizer(folder, {"pad_token": "[PAD]", "model_max_length": 512})
    return folder


def test_right_padding_puts_pads_after_the_real_tokens_with_the_pad_id(tok_dir):
    tok = load_tokenizer(tok_dir)
    batch = tok.encode(["this is a sample sentence", "cat"], max_length=10)
    assert tok.pad_id == 4
    assert batch.input_ids.shape == (2, 10) and batch.input_ids.dtype == np.int64
    assert batch.lengths.tolist() == [7, 3]
    assert batch.input_ids[1].tolist() == [CLS, CAT, SEP] + [PAD] * 7
    assert batch.attention_mask[1].tolist() == [1, 1, 1] + [0] * 7
    assert batch.attention_mask.sum(axis=1).tolist() == batch.lengths.tolist()


def test_left_padding_puts_pads_before_the_real_tokens(tok_dir):
    batch = load_tokenizer(tok_dir).encode(["cat", "the cat sat"], max_length=8, side="left")
    assert batch.input_ids[0].tolist() == [PAD] * 5 + [CLS, CAT, SEP]
    assert batch.attention_mask[0].tolist() == [0] * 5 + [1] * 3
    assert batch.input_ids[1, -1] == SEP and batch.input_ids[1, 3] == CLS
    assert batch.side == "left"


def test_longest_padding_pads_to_the_longest_text_only(tok_dir):
    batch = load_tokenizer(tok_dir).encode(["cat", "the cat sat on the mat"], max_length=64, padding="longest")
    assert batch.input_ids.shape == (2, 8)
    assert batch.lengths.tolist() == [3, 8]


def test_truncation_keeps_cls_and_sep(tok_dir):
    batch = load_tokenizer(tok_dir).encode(["the cat sat on the mat this is a sample"], max_length=5)
    assert batch.input_ids[0].tolist() == [CLS, ID["the"], CAT, ID["sat"], SEP]
    assert batch.lengths.tolist() == [5]


def test_truncation_does_not_leak_into_the_next_call(tok_dir):
    tok = load_tokenizer(tok_dir)
    tok.encode(["the cat sat on the mat"], max_length=4)
    batch = tok.encode(["the cat sat on the mat"], max_length=16)
    assert batch.lengths.tolist() == [8]
    assert tok.tokenizer.padding is None


def test_token_types_of_real_tokens_and_pad_type_on_pads(tmp_path):
    folder = tmp_path / "tok"
    write_tokenizer(folder, {"pad_token": "[PAD]", "pad_token_type_id": 1})
    tok = load_tokenizer(folder)
    batch = tok.encode(["cat"], max_length=5)
    assert tok.pad_type_id == 1
    assert batch.token_type_ids[0].tolist() == [0, 0, 0, 1, 1]
    assert batch.position_ids[0].tolist() == [0, 1, 2, 2, 2]  # from the mask: pads repeat n-1


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_tokenizer_s_batch_is_pad_rows_of_its_unpadded_rows(tmp_path, side):
    """The audit pads its once-tokenized rows with pad_rows: the same Batch as the tokenizer's, bit for bit."""
    folder = tmp_path / "tok"
    write_tokenizer(folder, {"pad_token": "[PAD]", "pad_token_type_id": 1})
    tok = load_tokenizer(folder)
    texts = ["cat", "the cat sat on the mat", "this is a sample"]
    batch = tok.encode(texts, max_length=10, side=side)
    rows = [(np.asarray(e.ids), np.asarray(e.type_ids), np.asarray(e.special_tokens_mask))
            for e in tok.tokenizer.encode_batch(texts)]
    ours = pad_rows(rows, 10, side, tok.pad_id, tok.pad_type_id)
    for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "special_tokens_mask", "lengths"):
        assert getattr(ours, name).dtype == np.int64 and np.array_equal(getattr(ours, name), getattr(batch, name)), name
    assert (ours.side, ours.pad_id) == (batch.side, batch.pad_id) == (side, PAD)
    real = [CLS, CAT, SEP]
    expected = real + [PAD] * 7 if side == "right" else [PAD] * 7 + real
    assert ours.input_ids[0].tolist() == expected
    assert ours.token_type_ids[0].tolist() == [0 if t != PAD else 1 for t in expected]
    assert ours.position_ids[0].tolist() == ([0, 1, 2] + [2] * 7 if side == "right" else [0] * 8 + [1, 2])


def test_special_tokens_mask_marks_cls_and_sep_but_not_pads(tok_dir):
    batch = load_tokenizer(tok_dir).encode(["cat"], max_length=5)
    assert batch.special_tokens_mask[0].tolist() == [1, 0, 1, 0, 0]


def test_pad_token_comes_from_special_tokens_map_as_a_dict(tmp_path):
    folder = tmp_path / "tok"
    write_tokenizer(folder, specials=["[UNK]", "[CLS]", "[SEP]", "<blank>"])
    (folder / "special_tokens_map.json").write_text(json.dumps({"pad_token": {"content": "<blank>"}}))
    tok = load_tokenizer(folder)
    assert (tok.pad_id, tok.pad_token) == (3, "<blank>")


def test_pad_token_falls_back_to_a_pad_in_the_vocabulary(tmp_path):
    folder = tmp_path / "tok"
    write_tokenizer(folder)
    assert load_tokenizer(folder).pad_id == 4


def test_a_tokenizer_without_any_pad_token_is_bad_input(tmp_path):
    folder = tmp_path / "tok"
    write_tokenizer(folder, specials=["[UNK]", "[CLS]", "[SEP]"])
    with pytest.raises(BadInput, match="no pad token"):
        load_tokenizer(folder)


def test_a_tokenizer_json_file_path_is_accepted(tok_dir):
    tok = load_tokenizer(tok_dir / "tokenizer.json")
    assert tok.encode(["cat"], max_length=4).input_ids[0].tolist() == [CLS, CAT, SEP, PAD]
    assert tok.model_max_length == 512


def test_a_folder_with_only_vocab_txt_builds_a_wordpiece_tokenizer(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat", "play", "##ing"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = load_tokenizer(folder)
    batch = tok.encode(["Playing CAT"], max_length=8)
    assert batch.input_ids[0].tolist() == [2, 6, 7, 5, 3, 0, 0, 0]
    assert tok.pad_id == 0 and tok.vocab_size == 8


def test_vocab_size_counts_added_tokens(tok_dir):
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    tok.add_tokens(["newword", "another"])
    tok.save(str(tok_dir / "tokenizer.json"))
    assert load_tokenizer(tok_dir).vocab_size == len(SPECIALS) + len(WORDS) + 2


@pytest.mark.parametrize("kwargs, match", [
    ({"texts": []}, "no texts"),
    ({"texts": ["cat"], "side": "middle"}, "padding side"),
    ({"texts": ["cat"], "padding": "none"}, "padding must be"),
    ({"texts": ["cat"], "max_length": 1}, "at least 2"),
])
def test_bad_encode_arguments_are_bad_input(tok_dir, kwargs, match):
    with pytest.raises(BadInput, match=match):
        load_tokenizer(tok_dir).encode(**kwargs)


def test_a_missing_or_empty_tokenizer_path_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_tokenizer(tmp_path / "nowhere")
    with pytest.raises(BadInput, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_a_corrupt_tokenizer_json_is_bad_input(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(BadInput, match="cannot be read"):
        load_tokenizer(tmp_path)


def test_a_tokenizer_is_loaded_once_until_its_files_change(zoo, tmp_path):
    import os
    import shutil

    folder = tmp_path / "tok"
    shutil.copytree(zoo("padlens"), folder, ignore=shutil.ignore_patterns("*.onnx", "*.json.bak"))
    first = load_tokenizer(folder)
    assert load_tokenizer(folder) is first
    config = folder / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data["padding_side"] = "left"
    config.write_text(json.dumps(data))
    later = config.stat().st_mtime_ns + 10**9  # a changed time even where the clock is coarse
    os.utime(config, ns=(later, later))
    second = load_tokenizer(folder)
    assert second is not first and second.padding_side == "left" and first.padding_side != "left"


def _ship(folder, padding=None, truncation=None, config=None):
    """tok_dir with tokenizer.json's padding/truncation blocks (and tokenizer_config.json) as given."""
    raw = json.loads((folder / "tokenizer.json").read_text())
    raw["padding"], raw["truncation"] = padding, truncation
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return load_tokenizer(folder).shipped


FIXED_128 = {"strategy": {"Fixed": 128}, "direction": "Right", "pad_id": PAD, "pad_type_id": 0, "pad_token": "[PAD]",
             "pad_to_multiple_of": None}
LONGEST_LEFT = {**FIXED_128, "strategy": "BatchLongest", "direction": "Left"}
TRUNC_128 = {"max_length": 128, "strategy": "LongestFirst", "direction": "Right", "stride": 0}


@pytest.mark.parametrize("padding, truncation, side, length, mode, said", [
    (FIXED_128, TRUNC_128, "right", 128, "max_length", None),
    (FIXED_128, TRUNC_128, "right", 64, "max_length", "padlens pads to 64 tokens, truncates at 64; the folder's "
     "tokenizer ships padding to a Fixed 128, truncates at 128"),
    (FIXED_128, None, "left", 128, "max_length", "padlens pads on the left; the folder's tokenizer ships padding on "
     "the right (tokenizer.json padding)"),
    (FIXED_128, None, "right", 128, "longest", "padlens pads to each batch's longest text; the folder's tokenizer "
     "ships padding to a Fixed 128"),
    (LONGEST_LEFT, None, "left", 32, "max_length", "padlens pads to 32 tokens; the folder's tokenizer ships "
     "padding to each batch's longest text (BatchLongest)"),
    (None, None, "right", 32, "max_length", None),
])
def test_the_shipped_padding_is_compared_with_padlens_own(tok_dir, padding, truncation, side, length, mode, said):
    note = _ship(tok_dir, padding, truncation).difference(side, length, mode)
    if said is None:
        assert note is None
    else:
        assert note.startswith(said + ":"), note


def test_a_config_side_counts_as_shipped_when_tokenizer_json_has_no_padding(tok_dir):
    shipped = _ship(tok_dir, config={"pad_token": "[PAD]", "padding_side": "left"})
    assert shipped.difference("right", 32).startswith(
        "padlens pads on the right; the folder's tokenizer ships padding on the left (tokenizer_config.json)")
    assert shipped.difference("left", 32) is None


def test_inspect_notes_where_padlens_pads_other_than_the_folder_ships(zoo, tmp_path):
    import shutil

    from padlens.inspector.inspect import inspect

    folder = shutil.copytree(zoo("torchscript"), tmp_path / "m")
    raw = json.loads((folder / "tokenizer.json").read_text())
    raw["padding"] = {**FIXED_128, "pad_id": 0}
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    warnings = inspect([str(folder)], texts=["a cat sat", "this is a sample sentence"], max_length=16).runs[0].warnings
    assert any(w.startswith("padlens pads to 16 tokens; the folder's tokenizer ships padding to a Fixed 128")
               for w in warnings), warnings
    raw["padding"]["strategy"] = {"Fixed": 16}
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    warnings = inspect([str(folder)], texts=["a cat sat"], max_length=16).runs[0].warnings
    assert not any("the folder's tokenizer ships" in w for w in warnings), warnings


def test_a_tokenizer_failure_while_encoding_names_the_file_and_the_length_as_a_parameter(tok_dir, monkeypatch):
    tok = load_tokenizer(tok_dir)

    def broken(*_a, **_k):
        raise Exception("WordPiece error: Missing [UNK] token from the vocabulary")

    monkeypatch.setattr(tok.tokenizer, "encode_batch", broken)
    with pytest.raises(BadInput) as exc:
        tok.encode(["a cat"], max_length=16)
    assert str(exc.value) == (f"tokenizer {tok_dir / 'tokenizer.json'} cannot encode these texts (max_length=16): "
                              "WordPiece error: Missing [UNK] token from the vocabulary")
    assert exc.value.parameter == "max_length"
