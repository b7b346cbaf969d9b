"""alloy_torch tests: each starts and ends with a fresh Dynamo cache."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
