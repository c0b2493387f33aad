"""transformers' load report: the expected pooler-only report is dropped, any other is kept."""

from __future__ import annotations

import logging

import pytest
from transformers.utils.loading_report import LoadStateDictInfo, log_state_dict_report

from finsentry.models.classifier import MultiTaskClassifier

LOGGER = "transformers.modeling_utils"  # where transformers logs the report


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def reports():
    handler = Collect()
    logging.getLogger(LOGGER).addHandler(handler)
    yield handler.messages
    logging.getLogger(LOGGER).removeHandler(handler)


def report(model, unexpected=(), missing=()) -> None:
    info = LoadStateDictInfo(
        missing_keys=set(missing),
        unexpected_keys=set(unexpected),
        mismatched_keys=set(),
        error_msgs=[],
        conversion_errors={},
        skipped_pp_keys=set(),
    )
    log_state_dict_report(model, "the-checkpoint", False, info, logger=logging.getLogger(LOGGER))


def test_loading_the_encoder_reports_nothing_but_real_problems_still_show(reports):
    model = MultiTaskClassifier.from_base()
    assert not [m for m in reports if "LOAD REPORT" in m]  # the checkpoint's unused pooler
    report(model.encoder, unexpected=["pooler.dense.weight", "pooler.dense.bias"])
    assert not reports
    report(model.encoder, unexpected=["pooler.dense.weight", "encoder.layer.0.output.dense.weight"])
    report(model.encoder, unexpected=["pooler.dense.bias"], missing=["embeddings.word_embeddings.weight"])
    assert len(reports) == 2 and all("LOAD REPORT" in m for m in reports)
    assert "encoder.layer.0.output.dense.weight" in reports[0] and "MISSING" in reports[1]
