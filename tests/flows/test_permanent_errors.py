"""A trial whose calls were all refused is a Failed task run: said once, without a stray `NoneType: None`."""

from __future__ import annotations

from llm_erm.wire.server import Fault, WireServer


def test_failed_trials_log_no_empty_traceback(tmp_path, capfd):
    from llm_erm.flows.grid import erm_grid

    with WireServer() as server:
        server.inject(*[Fault.http_error(401, "Incorrect API key provided.")] * 4)
        state = erm_grid(functions=["fn_a"], lengths=[20], attempts=2, trials=2, test_size=400, retry_delay_s=0.01,
                         proposer={"kind": "openai-chat", "base_url": server.url}, analyze=False, run_id="perm",
                         results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"),
                         return_state=True)
    assert state.is_failed()
    assert "Re-running will not help until this is fixed: 401 Unauthorized" in state.message
    err = capfd.readouterr().err
    assert "Task run 'trial fn_a L20 t1'" in err  # the failure is logged ...
    assert "NoneType: None" not in err  # ... without an empty traceback after it
