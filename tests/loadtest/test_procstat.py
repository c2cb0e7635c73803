from __future__ import annotations

import os
import time

import pytest

from bridge.errors import InputError
from bridge.loadtest.procstat import (
    ProcSample,
    parse_metrics,
    parse_stat,
    parse_status,
    read_proc,
    usage,
)

# A real /proc/<pid>/stat line whose command name holds a space and a parenthesis.
STAT = "4242 (py thon) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 250 150 0 0 20 0 3 0 100 1000 500"


def test_stat_counts_fields_after_the_last_parenthesis():
    assert parse_stat(STAT, clk_tck=100) == pytest.approx(4.0)  # (250 + 150) / 100


def test_stat_garbage_is_an_input_error():
    with pytest.raises(InputError):
        parse_stat("4242 no parens here", 100)
    with pytest.raises(InputError):
        parse_stat("1 (x) S 1 2", 100)


def test_status_rss_and_high_water_mark():
    text = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n"
    assert parse_status(text) == (100 * 1024 * 1024, 200 * 1024 * 1024)
    with pytest.raises(InputError):
        parse_status("Name:\tzombie\n")


def test_reading_this_process():
    a = read_proc(os.getpid(), 0.0)
    sum(i * i for i in range(300_000))  # burn a little CPU
    time.sleep(0)
    b = read_proc(os.getpid(), 1.0)
    assert b.cpu_s >= a.cpu_s > 0
    assert a.rss_bytes > 1024 * 1024 and a.hwm_bytes is not None and a.hwm_bytes >= a.rss_bytes


def test_metrics_page():
    page = (
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total 12.5\n"
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes 5.24288e+07\n"
        "# HELP bridge_active_calls Calls with a live media stream\n"
        "# TYPE bridge_active_calls gauge\n"
        "bridge_active_calls 7.0\n"
    )
    s = parse_metrics(page, 3.0)
    assert (s.cpu_s, s.rss_bytes, s.active_calls, s.t) == (12.5, 52428800, 7.0, 3.0)


def test_metrics_without_process_collector_says_so():
    with pytest.raises(InputError, match="process collector"):
        parse_metrics("# TYPE bridge_active_calls gauge\nbridge_active_calls 1\n", 0)


def test_usage_over_a_window():
    samples = [
        ProcSample(0.0, 1.0, 100, 150),
        ProcSample(1.0, 1.5, 300, 300),
        ProcSample(2.0, 2.5, 200, 320),
        ProcSample(3.0, 9.0, 200, 320),
    ]
    u = usage(samples, 0.5, 2.5)
    assert u is not None
    assert u.cpu_s == pytest.approx(1.0) and u.rss_start_bytes == 300 and u.rss_peak_bytes == 320
    assert usage(samples, 2.5, 2.9) is None
