"""Reading iperf3: its real -J output (captured from iperf3 3.12 between two namespaces, intervals
trimmed), its error texts, the argv we give it, and the hard limit that kills its process group."""

from __future__ import annotations

import json
import sys
import time

import pytest

from guestcheck.selftest import errors
from guestcheck.selftest.iperf3 import (
    DOWNLOAD,
    UPLOAD,
    RunSpec,
    classify,
    client_argv,
    first_json_object,
    parse_run,
    run_client,
    run_process,
    supported_options,
)

# iperf3 -c 10.198.0.2 -t 1 -P 2 -J --extra-data ... over veth shaped by tbf to 100 Mbit/s
UPLOAD_2_STREAMS = json.loads("""
{"start": {"connected": [{"local_host": "10.198.0.1", "remote_host": "10.198.0.2", "remote_port": 5201},
 {"local_host": "10.198.0.1", "remote_host": "10.198.0.2", "remote_port": 5201}], "version": "iperf 3.12",
 "test_start": {"num_streams": 2, "duration": 1, "reverse": 0}}, "intervals": [{}],
 "end": {"streams": [{"sender": {"bytes": 8171016, "bits_per_second": 65260383.10748953, "retransmits": 126,
 "max_rtt": 9419, "min_rtt": 9419, "mean_rtt": 9419, "sender": true}}, {"sender": {"bytes": 6185856,
 "bits_per_second": 49405279.8829133, "retransmits": 4043, "max_rtt": 9120, "min_rtt": 9120, "mean_rtt": 9120,
 "sender": true}}], "sum_sent": {"start": 0, "end": 1.001651, "seconds": 1.001651, "bytes": 14356872,
 "bits_per_second": 114665662.99040283, "retransmits": 4169, "sender": true}, "sum_received": {"start": 0,
 "end": 1.012587, "seconds": 1.012587, "bytes": 12096544, "bits_per_second": 95569419.71405914, "sender": true},
 "cpu_utilization_percent": {"host_total": 0.663, "host_user": 0, "host_system": 0.663, "remote_total": 2.824,
 "remote_user": 0, "remote_system": 2.824}}, "extra_data": "guestcheck-selftest/1 session=ab12cd34 run=1/2"}
""")

# iperf3 -c 10.198.0.2 -t 1 -R -J --get-server-output ... against `iperf3 -s -J`
DOWNLOAD_1_STREAM = json.loads("""
{"start": {"connected": [{"local_host": "10.198.0.1", "remote_host": "10.198.0.2", "remote_port": 5201}],
 "version": "iperf 3.12", "test_start": {"num_streams": 1, "duration": 1, "reverse": 1}}, "intervals": [{}],
 "end": {"streams": [{"sender": {"bytes": 13192728, "bits_per_second": 105400902.99269877, "retransmits": 0,
 "max_rtt": 0, "min_rtt": 0, "mean_rtt": 0, "sender": false}}], "sum_sent": {"start": 0, "end": 1.001337,
 "seconds": 1.001337, "bytes": 13192728, "bits_per_second": 105400902.99269877, "retransmits": 0, "sender": false},
 "sum_received": {"start": 0, "end": 1.000091, "seconds": 1.000091, "bytes": 11977856,
 "bits_per_second": 95814128.9142688, "sender": false}, "cpu_utilization_percent": {"host_total": 5.617,
 "host_user": 1.721, "host_system": 3.896, "remote_total": 0.913, "remote_user": 0, "remote_system": 0.912}},
 "extra_data": "guestcheck-selftest/1 session=ab12cd34 run=2/2", "server_output_json": {"end": {"streams":
 [{"sender": {"bits_per_second": 105400902.99269877, "max_rtt": 8188, "min_rtt": 8188, "mean_rtt": 8188,
 "sender": true}}]}}}
""")

ALL = frozenset({"--connect-timeout", "--snd-timeout", "--rcv-timeout", "--extra-data"})


def test_upload_figures_come_from_the_receiver_and_the_senders_tcp_info():
    run = parse_run(UPLOAD_2_STREAMS, UPLOAD, 2, 1.2)
    assert run.throughput_bps == pytest.approx(95569419.7)  # received, not the 114.7 Mbit/s sent
    assert run.sent_bps == pytest.approx(114665663.0)
    assert run.retransmits == 4169
    assert (run.cpu_local_percent, run.cpu_remote_percent) == (0.663, 2.824)
    assert run.rtt_mean_ms == pytest.approx((9.419 + 9.120) / 2)
    assert (run.rtt_min_ms, run.rtt_max_ms) == (pytest.approx(9.12), pytest.approx(9.419))
    assert run.iperf3_version == "iperf 3.12"
    assert run.seconds == pytest.approx(1.012587)


def test_download_rtt_comes_from_the_peer_which_was_the_sender():
    run = parse_run(DOWNLOAD_1_STREAM, DOWNLOAD, 1, 1.1)
    assert run.throughput_bps == pytest.approx(95814128.9)
    assert run.retransmits == 0
    assert run.rtt_mean_ms == pytest.approx(8.188)
    assert (run.cpu_local_percent, run.cpu_remote_percent) == (5.617, 0.913)


def test_download_from_a_plain_text_server_has_no_rtt():
    doc = {k: v for k, v in DOWNLOAD_1_STREAM.items() if k != "server_output_json"}
    doc["server_output_text"] = "[  5]   0.00-1.00   sec  11.4 MBytes  95.7 Mbits/sec"
    run = parse_run(doc, DOWNLOAD, 1, 1.1)
    assert run.rtt_mean_ms is None and run.throughput_bps > 0


def test_a_warning_line_before_the_json_is_skipped():
    text = "WARNING:  Size of data read does not correspond to offered length\n" + json.dumps(UPLOAD_2_STREAMS)
    assert first_json_object(text) == UPLOAD_2_STREAMS
    assert first_json_object("iperf3: parameter error - bad\n") is None
    assert first_json_object('{"start": ') is None


@pytest.mark.parametrize("message,started,code", [
    ("unable to connect to server: Connection refused", False, errors.REFUSED),
    # accepted by the kernel, then iperf3 closed its listener between two tests: a refusal, retried as one
    ("unable to connect to server: Connection reset by peer", False, errors.REFUSED),
    ("unable to connect to server: Connection timed out", False, errors.UNREACHABLE),
    ("unable to connect to server: No route to host", False, errors.UNREACHABLE),
    ("unable to connect to server: Network is unreachable", False, errors.UNREACHABLE),
    ("the server is busy running a test. try again later", False, errors.BUSY),
    ("control socket has closed unexpectedly", True, errors.PEER_DIED),
    ("control socket has closed unexpectedly", False, errors.PEER_DIED),
    ("unable to write to stream socket: No route to host", True, errors.PEER_DIED),
    ("idle timeout for receiving data", True, errors.PEER_DIED),
    ("unable to receive results: Connection reset by peer", True, errors.PEER_DIED),
    ("parameter error - client receive timeout is valid only in receiving mode", False, errors.IPERF3_FAILED),
])
def test_iperf3_errors_become_our_exit_codes(message, started, code):
    err = classify(message, started, "10.0.0.2:5201")
    assert err.code == code
    assert err.message.startswith(("10.0.0.2:5201", "iperf3 failed against 10.0.0.2:5201"))
    assert "\n" not in err.message


def test_argv_for_an_upload():
    spec = RunSpec("10.0.0.2", 5301, UPLOAD, 4, 5, 2.5, "guestcheck-selftest/1 session=x run=1/4")
    argv = client_argv("/usr/bin/iperf3", spec, ALL)
    assert argv[:3] == ["/usr/bin/iperf3", "-c", "10.0.0.2"]
    assert argv[argv.index("-p") + 1] == "5301" and argv[argv.index("-t") + 1] == "5"
    assert argv[argv.index("-P") + 1] == "4" and "-J" in argv
    assert argv[argv.index("--connect-timeout") + 1] == "2500"
    assert argv[argv.index("--snd-timeout") + 1] == "2500"
    assert "-R" not in argv and "--rcv-timeout" not in argv  # iperf3 3.12 refuses it on a sender
    assert argv[argv.index("--extra-data") + 1] == "guestcheck-selftest/1 session=x run=1/4"


def test_argv_for_a_download_and_for_an_old_iperf3():
    spec = RunSpec("fd00::2", 5201, DOWNLOAD, 1, 5, 10, "tag")
    argv = client_argv("iperf3", spec, ALL)
    assert {"-R", "--get-server-output"} <= set(argv)
    assert argv[argv.index("--rcv-timeout") + 1] == "10000"
    old = client_argv("iperf3", spec, frozenset())
    assert not {"--connect-timeout", "--snd-timeout", "--rcv-timeout", "--extra-data"} & set(old)
    assert spec.hard_limit == 10 + 5 + 10 + 1


def test_hard_limit_kills_the_whole_process_group():
    # a child that starts a grandchild and both sleep: killing only the child would leave the grandchild
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)']); print(p.pid, flush=True); time.sleep(60)")
    start = time.monotonic()
    done = run_process([sys.executable, "-c", code], hard_limit=1.0)
    assert done.timed_out
    assert time.monotonic() - start < 5
    grandchild = int(done.stdout.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_finished_process_is_not_timed_out():
    done = run_process([sys.executable, "-c", "print('{}')"], hard_limit=10)
    assert not done.timed_out and done.stdout.strip() == "{}"


def fake_iperf3(tmp_path, body: str) -> str:
    """A stand-in binary for the client's plumbing only; the real iperf3 runs in tests/live."""
    path = tmp_path / "iperf3"
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_json_error_wins_over_exit_status_zero(tmp_path):
    # iperf3 3.12 exits 0 with {"error": ...} when the peer dies mid-test
    doc = {"start": {"connected": [{"remote_host": "10.0.0.2"}]}, "intervals": [{}], "end": {},
           "error": "control socket has closed unexpectedly"}
    binary = fake_iperf3(tmp_path, f"import sys; print({json.dumps(json.dumps(doc))}); sys.exit(0)")
    with pytest.raises(errors.SelftestError) as caught:
        run_client(binary, RunSpec("10.0.0.2", 5201, UPLOAD, 1, 1, 1), "10.0.0.2:5201")
    assert caught.value.code == errors.PEER_DIED


def test_a_silent_iperf3_is_killed_at_the_hard_limit(tmp_path):
    binary = fake_iperf3(tmp_path, "import sys, time\nif '--help' in sys.argv: print('--connect-timeout')\n"
                                   "else: time.sleep(60)")
    start = time.monotonic()
    with pytest.raises(errors.SelftestError, match="stopped answering") as caught:
        run_client(binary, RunSpec("10.0.0.2", 5201, UPLOAD, 1, 1, 0.5), "10.0.0.2:5201")
    assert caught.value.code == errors.PEER_DIED
    assert time.monotonic() - start < 1 + 0.5 + 0.5 + 1 + 1.5


def test_text_on_stderr_without_json_is_classified(tmp_path):
    binary = fake_iperf3(tmp_path, "import sys; sys.stderr.write('iperf3: parameter error - bad port\\n'); "
                                   "sys.exit(1)")
    with pytest.raises(errors.SelftestError, match="parameter error - bad port") as caught:
        run_client(binary, RunSpec("10.0.0.2", 5201, UPLOAD, 1, 1, 1), "10.0.0.2:5201")
    assert caught.value.code == errors.IPERF3_FAILED


def test_the_argv_reaches_iperf3_verbatim(tmp_path):
    record = tmp_path / "argv.json"
    body = (f"import json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
            f"print({json.dumps(json.dumps(UPLOAD_2_STREAMS))})")
    binary = fake_iperf3(tmp_path, body)
    spec = RunSpec("10.0.0.2", 5201, UPLOAD, 2, 1, 1, "guestcheck-selftest/1 session=$(id) run=1/1")
    run = run_client(binary, spec, "10.0.0.2:5201")
    assert run.throughput_bps == pytest.approx(95569419.7)
    assert json.loads(record.read_text()) == client_argv(binary, spec, supported_options(binary))[1:]


def _with(doc: dict, path: tuple, value) -> dict:
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize("value", [["a", "list"], "a string", 5, None, {"end": []}, {"end": {"streams": "x"}},
                                   {"end": {"streams": [1, "x", {"sender": []}]}}])
def test_a_hostile_server_output_json_only_loses_the_peers_rtt(value):
    """The peer writes server_output_json: of the wrong type it crashed the client (issue 9)."""
    run = parse_run(_with(DOWNLOAD_1_STREAM, ("server_output_json",), value), DOWNLOAD, 1, 1.1)
    assert run.rtt_mean_ms is None and run.throughput_bps == pytest.approx(95814128.9)


@pytest.mark.parametrize("path,value", [
    (("end", "sum_sent", "retransmits"), -1), (("end", "sum_sent", "retransmits"), 2.5),
    (("end", "sum_sent", "retransmits"), True), (("end", "sum_sent", "retransmits"), 10**30),
    (("end", "cpu_utilization_percent", "host_total"), -3), (("end", "cpu_utilization_percent"), [1]),
    (("end", "sum_sent", "bits_per_second"), "fast"), (("start", "version"), ["iperf 3"]),
    (("end", "streams", 0, "sender", "mean_rtt"), 10**400), (("end", "sum_received", "seconds"), -1),
])
def test_optional_figures_of_the_wrong_type_or_range_are_not_reported(path, value):
    run = parse_run(_with(UPLOAD_2_STREAMS, path, value), UPLOAD, 2, 1.2)
    assert run.throughput_bps == pytest.approx(95569419.7)
    figure = {"retransmits": run.retransmits, "host_total": run.cpu_local_percent, "cpu_utilization_percent":
              run.cpu_local_percent, "bits_per_second": run.sent_bps or None, "version": run.iperf3_version or None,
              "mean_rtt": run.rtt_mean_ms if run.rtt_mean_ms != pytest.approx(9.120) else None,
              "seconds": run.seconds or None}[path[-1]]
    assert figure is None, (path, figure)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 1e16, "95569419", None, True, [1], 10**400])
def test_a_throughput_that_is_not_a_measurement_is_an_iperf3_failure(value):
    with pytest.raises(errors.SelftestError, match="bits_per_second") as caught:
        parse_run(_with(UPLOAD_2_STREAMS, ("end", "sum_received", "bits_per_second"), value), UPLOAD, 2, 1.2)
    assert caught.value.code == errors.IPERF3_FAILED


@pytest.mark.parametrize("raw", ["NaN", "9" * 5000, "[" * 100000 + "]" * 100000])
def test_json_python_cannot_read_is_no_document(raw):
    """A 5000-digit integer raised ValueError and deep nesting RecursionError (issue 9)."""
    doc = first_json_object('{"end": {"sum_received": {"bits_per_second": ' + raw + "}}}")
    assert doc is None or raw != "[" * 100000 + "]" * 100000  # too deep: nothing; else a value no getter takes
    with pytest.raises(errors.SelftestError) as caught:
        parse_run(doc or {}, UPLOAD, 1, 1.0)
    assert caught.value.code == errors.IPERF3_FAILED


def test_an_error_that_is_not_text_is_an_iperf3_failure(tmp_path):
    doc = {"start": {"connected": [{}]}, "error": {"deep": ["structure"]}}
    binary = fake_iperf3(tmp_path, f"print({json.dumps(json.dumps(doc))})")
    with pytest.raises(errors.SelftestError, match="its JSON has an error that is not text") as caught:
        run_client(binary, RunSpec("10.0.0.2", 5201, UPLOAD, 1, 1, 1), "10.0.0.2:5201")
    assert caught.value.code == errors.IPERF3_FAILED


def test_output_that_is_not_utf8_and_control_characters_reach_no_terminal(tmp_path):
    binary = fake_iperf3(tmp_path, "import sys; sys.stdout.buffer.write(b'\\xff\\xfe{'); "
                                   "sys.stderr.write('iperf3: error - \\x1b]0;owned\\x07 busy\\n')")
    with pytest.raises(errors.SelftestError) as caught:
        run_client(binary, RunSpec("10.0.0.2", 5201, UPLOAD, 1, 1, 1), "10.0.0.2:5201")
    assert caught.value.code == errors.BUSY
    assert "\x1b" not in caught.value.message and "\\x1b]0;owned\\x07" in caught.value.message


def test_a_timeout_in_milliseconds_is_rounded_not_truncated():
    argv = client_argv("iperf3", RunSpec("10.0.0.2", 5201, UPLOAD, 1, 1, 0.57), ALL)
    assert argv[argv.index("--connect-timeout") + 1] == "570"
