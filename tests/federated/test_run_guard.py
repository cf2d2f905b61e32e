"""A federation that never aggregated an update is a failed run, not a finished one."""

import pytest

from fedhar.exceptions import FederationError
from fedhar.federated.run import never_aggregated


def test_every_round_without_clients_fails_with_the_first_reason():
    rounds = [{"round": 1, "clients": 0, "failure_reasons": ["client error: dtype mismatch"]},
              {"round": 2, "clients": 0, "failure_reasons": ["client error: dtype mismatch"]}]
    with pytest.raises(FederationError, match="never changed; first failure: client error: dtype mismatch"):
        never_aggregated(rounds)


def test_one_aggregated_round_is_enough():
    never_aggregated([{"round": 1, "clients": 0, "failure_reasons": ["x"]}, {"round": 2, "clients": 2}])
    never_aggregated([])
