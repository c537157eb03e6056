"""Identity from the environment, against conformance/vectors/env.json."""

import pytest
from conftest import vectors

from distarch_worker import Identity, WorkerError


def test_valid_sets_give_the_expected_identity() -> None:
    for v in vectors("env.json")["valid"]:
        ident = Identity.from_env(v["env"])
        for key, want in v["expect"].items():
            assert getattr(ident, key) == want, (v["name"], key)


def test_broken_sets_fail_naming_the_variable() -> None:
    for v in vectors("env.json")["broken"]:
        with pytest.raises(WorkerError) as err:
            Identity.from_env(v["env"])
        assert v["names"] in str(err.value), v["name"]


def test_no_id_means_not_started_by_distarch() -> None:
    with pytest.raises(WorkerError, match="not started by distarch: DISTARCH_ID is not set"):
        Identity.from_env({})


def test_params_round_trip() -> None:
    import json

    env = dict(vectors("env.json")["valid"][0]["env"])
    for v in vectors("params.json")["params"]:
        env["DISTARCH_PARAMS"] = json.dumps(v["params"], ensure_ascii=False)
        assert Identity.from_env(env).params == v["params"], v["name"]
    env["DISTARCH_PARAMS"] = ""
    assert Identity.from_env(env).params == {}
