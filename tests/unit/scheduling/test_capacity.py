"""Discovered in-flight budgets: from engine metrics, from time to first byte, and the text they come in."""

from __future__ import annotations

from tenantgate.routing.engine_load import EngineLoad, metrics_url, read_engine_load
from tenantgate.scheduling.capacity import COLD_START, PROBE_EVERY_S, PROBE_FIXED_LIMIT_S, Capacity
from tenantgate.sim.wire import metrics_text


def vllm(running: int, waiting: int, kv: float = 0.2) -> EngineLoad:
    return EngineLoad("vllm", running, waiting, kv)


def test_a_configured_budget_never_moves() -> None:
    capacity = Capacity(configured=12)
    assert (capacity.limit, capacity.source, capacity.discovers) == (12, "configured", False)
    assert not capacity.engine_reported(vllm(12, 30), ours=12, backlog=5, now=1.0)
    assert not capacity.queued(in_flight_at_send=12, now=1.0)
    assert capacity.limit == 12


def test_metrics_double_the_budget_until_the_engine_queues_then_settle_on_what_it_runs() -> None:
    capacity = Capacity()
    assert capacity.limit == COLD_START
    now = 0.0
    # An engine that runs 8: all of ours run while we send at most 8; we have work waiting.
    while capacity.limit < 8:
        now += 0.5
        assert capacity.engine_reported(vllm(capacity.limit, 0), ours=capacity.limit, backlog=50, now=now)
    assert capacity.engine_reported(vllm(8, 0), ours=8, backlog=50, now=now + 0.5)
    assert capacity.limit == 16
    # 16 sent: the engine runs 8 and queues 8. One scrape could be a request caught before admission.
    assert not capacity.engine_reported(vllm(8, 8), ours=16, backlog=40, now=now + 1.0)
    assert capacity.engine_reported(vllm(8, 8), ours=16, backlog=40, now=now + 1.5)
    assert (capacity.limit, capacity.known) == (8, 8)
    assert capacity.source == "engine metrics (vllm)" and "queues 8 with 8 running" in capacity.reason
    # Its KV cache had room: its sequence limit was the bound, a static setting; probe again only much later.
    assert capacity.probe_every_s == PROBE_FIXED_LIMIT_S
    assert not capacity.engine_reported(vllm(8, 0), ours=8, backlog=40, now=now + 30)
    assert capacity.engine_reported(vllm(8, 0), ours=8, backlog=40, now=now + 1.5 + PROBE_FIXED_LIMIT_S)
    assert capacity.limit == 9


def test_metrics_follow_an_engine_that_shrinks_and_recover_below_what_it_ran() -> None:
    capacity = Capacity(limit=8)
    capacity.engine_reported(vllm(4, 4, kv=0.95), ours=8, backlog=10, now=1.0)
    assert capacity.engine_reported(vllm(4, 4, kv=0.95), ours=8, backlog=10, now=1.5)
    assert capacity.limit == 4 and capacity.probe_every_s == PROBE_EVERY_S  # KV-bound: probe soon
    assert not capacity.engine_reported(vllm(4, 0), ours=4, backlog=10, now=2.0)  # recently queued
    assert capacity.engine_reported(vllm(4, 0), ours=4, backlog=10, now=1.5 + PROBE_EVERY_S)
    assert capacity.limit == 5


def test_metrics_learn_nothing_while_the_budget_is_not_used_up() -> None:
    capacity = Capacity(limit=8)
    assert not capacity.engine_reported(vllm(3, 0), ours=3, backlog=0, now=1.0)
    assert not capacity.engine_reported(vllm(8, 0), ours=8, backlog=0, now=2.0)  # nothing waits here
    assert capacity.limit == 8


def test_adaptive_grows_on_time_and_shrinks_when_a_first_byte_is_late() -> None:
    capacity = Capacity()
    prompt = 60
    assert capacity.late_after_s(prompt) is None  # nothing measured yet
    assert capacity.first_byte(0.010, prompt, in_flight_at_send=COLD_START, now=1.0)
    assert capacity.limit == COLD_START + 1
    late = capacity.late_after_s(prompt)
    assert late is not None and 0.010 < late < 0.2
    assert capacity.late_after_s(4000) is None  # a much longer prompt has its own unloaded time
    while capacity.limit < 9:  # one step per on-time request sent with the budget full
        assert capacity.first_byte(0.012, prompt, in_flight_at_send=capacity.limit, now=1.5)
    # A request sent with 9 in flight waited in the engine: it runs at most 8.
    assert capacity.first_byte(late + 0.5, prompt, in_flight_at_send=9, now=2.0)
    assert (capacity.limit, capacity.known, capacity.source) == (8, 8, "adaptive (time to first byte)")
    # On-time first bytes at the budget grow it past the known capacity only once per probe interval.
    assert not capacity.first_byte(0.010, prompt, in_flight_at_send=8, now=3.0)
    assert capacity.limit == 8


def test_adaptive_stands_aside_while_the_engine_publishes_metrics() -> None:
    capacity = Capacity(limit=8)
    capacity.engine_reported(vllm(2, 0), ours=2, backlog=0, now=1.0)
    assert not capacity.first_byte(5.0, 10, in_flight_at_send=8, now=2.0)
    assert not capacity.queued(8, now=2.0)
    assert capacity.limit == 8


def test_a_refusal_caps_the_budget_at_what_runs_until_the_engine_comes_back() -> None:
    capacity = Capacity(limit=16)
    assert capacity.refused(others_in_flight=5, now=1.0)
    assert (capacity.limit, capacity.known, capacity.source) == (5, 5, "adaptive (refused connections)")
    # an engine that publishes metrics without queueing is still not asked for more until a probe is due
    assert not capacity.engine_reported(vllm(5, 0), ours=5, backlog=9, now=2.0)
    capacity.forget()  # it was down and answers its probe again
    assert capacity.engine_reported(vllm(5, 0), ours=5, backlog=9, now=2.5)
    assert capacity.limit == 10


def test_an_engine_that_went_away_is_learnt_afresh_even_after_a_fixed_limit() -> None:
    capacity = Capacity(limit=16)
    capacity.engine_reported(vllm(8, 8), ours=16, backlog=9, now=1.0)
    capacity.engine_reported(vllm(8, 8), ours=16, backlog=9, now=1.5)
    assert capacity.probe_every_s == PROBE_FIXED_LIMIT_S  # KV had room: probe again only in a minute
    capacity.refused(others_in_flight=1, now=2.0)  # going down: the last connections fail
    assert capacity.limit == 1
    capacity.forget()  # unreachable; it comes back, perhaps restarted with another size
    assert capacity.probe_every_s == PROBE_EVERY_S
    assert capacity.engine_reported(vllm(1, 0), ours=1, backlog=9, now=2.5)
    assert capacity.limit == 2  # doubling again, not one step a minute


def test_the_sim_engines_metrics_read_as_vllms() -> None:
    load = read_engine_load(metrics_text(("sim",), running=8, waiting=3, kv_usage=0.25).decode())
    assert load == EngineLoad("vllm", 8, 3, 0.25)


def test_every_engine_dialect_is_read_and_unknown_text_is_none() -> None:
    sglang = (
        'sglang:num_running_reqs{model_name="m"} 5\nsglang:num_queue_reqs{model_name="m"} 2\nsglang:token_usage 0.4\n'
    )
    tgi = "# TYPE tgi_queue_size gauge\ntgi_queue_size 7\ntgi_batch_current_size 32\n"
    llama = "llamacpp:requests_processing 4\nllamacpp:requests_deferred 1\nllamacpp:kv_cache_usage_ratio 0.9\n"
    assert read_engine_load(sglang) == EngineLoad("sglang", 5, 2, 0.4)
    assert read_engine_load(tgi) == EngineLoad("tgi", 32, 7, None)
    assert read_engine_load(llama) == EngineLoad("llama.cpp", 4, 1, 0.9)
    assert read_engine_load("<html>not metrics</html>") is None
    assert read_engine_load("vllm:num_requests_running{broken 3\n") is None


def test_data_parallel_ranks_are_summed_and_kv_use_is_the_fullest() -> None:
    text = (
        'vllm:num_requests_running{engine="0"} 8\nvllm:num_requests_running{engine="1"} 6\n'
        'vllm:num_requests_waiting{engine="0"} 2\nvllm:num_requests_waiting{engine="1"} 0\n'
        'vllm:kv_cache_usage_perc{engine="0"} 0.7\nvllm:kv_cache_usage_perc{engine="1"} 0.3\n'
    )
    assert read_engine_load(text) == EngineLoad("vllm", 14, 2, 0.7)


def test_metrics_live_at_the_root_of_an_openai_base_url() -> None:
    assert metrics_url("http://10.0.0.5:8000/v1") == "http://10.0.0.5:8000/metrics"
    assert metrics_url("http://engine:8080") == "http://engine:8080/metrics"
