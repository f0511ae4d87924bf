"""Hostile or broken configuration files, through the real command line: every one exits 2 with
the documented single line, in bounded time and memory, whatever the YAML library makes of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envoy_exporter.config.load import ConfigError, load_config, parse_config
from envoy_exporter.config.safe_yaml import MAX_BYTES, MAX_DEPTH, MAX_NODES, YAMLRefused, loads

PEAK_RSS_LIMIT_MB = 100  # python and the exporter's imports take ~30 MB
TIME_LIMIT_S = 20.0


def billion_laughs(levels: int = 10) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\ngateways:\n  - host: a\n"


def deep_through_aliases(anchors: int = 60, levels: int = MAX_DEPTH - 4) -> str:
    """Each anchor nests the previous one a little under ``MAX_DEPTH`` levels deeper: no anchor is
    deep, no alias is used twice, but the document they expand to is thousands of levels deep."""
    lines = ["a0: &a0 x"]
    lines += [f"a{i}: &a{i} {'[' * levels}*a{i - 1}{']' * levels}" for i in range(1, anchors)]
    return "\n".join(lines) + f"\ngateways:\n  - host: a\n    name: *a{anchors - 1}\n"


HOSTILE = {
    "billion_laughs": (billion_laughs(), f"aliases expand to more than {MAX_NODES} nodes"),
    "deep_flow": ("gateways: " + "[" * 20_000 + "]" * 20_000 + "\n", f"nested deeper than {MAX_DEPTH}"),
    "deep_block": ("".join(" " * i + f"k{i}:\n" for i in range(1_000)), f"nested deeper than {MAX_DEPTH}"),
    "deep_through_aliases": (deep_through_aliases(), f"nested deeper than {MAX_DEPTH}"),
    "recursive_alias": ("gateways: &g [*g]\n", "an alias refers to its own anchor"),
    "huge_int": ("gateways:\n  - host: a\n    timeout: " + "9" * 5_000 + "\n", "(ValueError)"),
    "no_such_date": ("state_dir: 2001-02-30\ngateways:\n  - host: a\n", "(ValueError)"),
    "python_tag": ("gateways: !!python/object/apply:os.system [true]\n", "could not determine a constructor"),
    "unhashable_key": ("? [a, b]\n: c\n", "unhashable key"),
    "tab": ("gateways:\n\t- host: a\n", "line 2"),
    "oversized": ("#" * (MAX_BYTES + 1), "larger than 1024 KiB"),
}


# Runs the command in-process and writes its own peak RSS (VmHWM) at exit. The rusage of a
# child is no use here: exec folds the parent's peak into ru_maxrss, so it would read pytest's.
_MEASURED = """
import atexit, os, runpy, sys

def _peak():
    with open("/proc/self/status") as status, open(os.environ["PEAK_RSS_FILE"], "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])

atexit.register(_peak)
sys.argv[0] = "envoy-exporter"
runpy.run_module("envoy_exporter", run_name="__main__")
"""


def run_cli(config: Path, *flags: str) -> tuple[int, str, float, float]:
    """Exit status, stderr, seconds and peak RSS (MB) of ``envoy-exporter --config.file``."""
    err_path = config.with_suffix(".err")
    peak_path = config.with_suffix(".peak")
    started = time.monotonic()
    with err_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _MEASURED, "--config.file", str(config), *flags],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PEAK_RSS_FILE": str(peak_path)},
        )
        try:
            status = process.wait(timeout=TIME_LIMIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"still running after {TIME_LIMIT_S}s")
    return status, err_path.read_text(), time.monotonic() - started, int(peak_path.read_text()) / 1024


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("flags", [("--check-config",), ()], ids=["check", "start"])
def test_hostile_yaml_exits_2_with_one_line(tmp_path, case, flags):
    text, reason = HOSTILE[case]
    config = tmp_path / "exporter.yml"
    config.write_text(text)
    status, err, seconds, peak_mb = run_cli(config, *flags)
    assert status == 2, err
    assert err.startswith(f"envoy-exporter: configuration error: {config}: "), err
    assert reason in err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert peak_mb < PEAK_RSS_LIMIT_MB
    assert seconds < TIME_LIMIT_S


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure Python"])
@pytest.mark.parametrize("case", sorted(set(HOSTILE) - {"oversized"}))
def test_both_yaml_loaders_refuse_alike(monkeypatch, case, libyaml):
    """libyaml's loader where PyYAML has it (a fleet's file loads ten times quicker), the
    pure-Python one elsewhere: the same refusals, in the same words."""
    if libyaml and not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    monkeypatch.setattr(yaml, "__with_libyaml__", libyaml)
    text, reason = HOSTILE[case]
    with pytest.raises(YAMLRefused) as refused:
        loads(text)
    assert reason in str(refused.value)
    assert loads("gateways:\n  - &g {host: a, timeout: 5}\n  - {<<: *g, host: b}\n") == {
        "gateways": [{"host": "a", "timeout": 5}, {"host": "b", "timeout": 5}]
    }


def test_not_utf8_and_a_directory(tmp_path):
    config = tmp_path / "exporter.yml"
    config.write_bytes(b"gateways:\n  - host: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 20\)"):
        load_config(config, env={})
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path, env={})


def test_anchors_within_the_budget_still_work(tmp_path):
    config = tmp_path / "exporter.yml"
    config.write_text(
        "x-site: &site {cache_ttl: 30, timeout: 5}\n"
        "gateways:\n  - {<<: *site, host: a}\n  - {<<: *site, host: b}\n"
        "x-unused: &u [1, 2, 3]\n"
    )
    # An unknown top-level key is still an error: anchors do not widen the schema.
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert caught.value.key == "x-site"
    config.write_text("gateways:\n  - &g {host: a, timeout: 5}\n  - {<<: *g, host: b}\n")
    a, b = load_config(config, env={}).gateways
    assert (a.host, a.timeout, b.host, b.timeout) == ("a", 5.0, "b", 5.0)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "gateways",
                    "host",
                    "name",
                    "serial",
                    "tls",
                    "cache_ttl",
                    "defaults",
                    "discovery",
                    "zeroconf",
                    "interfaces",
                    "token",
                    "username",
                    "x",
                ]
            )
            | st.integers()
            | st.booleans()
            | st.none(),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=yaml_values)
def test_any_document_is_settings_or_config_error(tmp_path, raw):
    try:
        parse_config(raw, base_dir=tmp_path, env={})
    except ConfigError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize(
    ("text", "key", "hosts"),
    [
        (
            'gateways:\n  - {host: a, serial: "1"}\n  - {host: b, serial: "1"}\n',
            "gateways[1].serial",
            ("a", "b"),
        ),
        (
            'gateways:\n  - {host: a, serial: "1", name: x}\n  - {host: b, serial: "1", name: y}\n',
            "gateways[1].serial",
            ("a", "b"),
        ),
        ('gateways:\n  - {host: a, name: "1"}\n  - {host: b, serial: "1"}\n', "gateways[1].name", ("a", "b")),
        (
            "gateways:\n  - {host: 10.0.0.5}\n  - {host: 10.0.0.5}\n",
            "gateways[1].host",
            ("10.0.0.5", "10.0.0.5"),
        ),
        (
            "gateways:\n  - {host: Envoy.local}\n  - {host: 'https://envoy.local/'}\n",
            "gateways[1].host",
            ("Envoy.local", "https://envoy.local/"),
        ),
    ],
)
def test_one_gateway_configured_twice_names_both_hosts(tmp_path, text, key, hosts):
    config = tmp_path / "exporter.yml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert caught.value.key == key
    assert f"gateways[0] (host {hosts[0]}) and gateways[1] (host {hosts[1]})" in caught.value.message


def test_two_unnamed_gateways_on_distinct_hosts_are_fine(tmp_path):
    # Their labels come from /info; the run-time guard handles a shared serial there.
    config = tmp_path / "exporter.yml"
    config.write_text("gateways:\n  - host: a\n  - host: b\n")
    assert [g.host for g in load_config(config, env={}).gateways] == ["a", "b"]
