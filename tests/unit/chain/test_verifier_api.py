"""``cf.Verifier``: the one typed way to verify. Over paths and over an opened snapshot it
gives the report ``verify --json`` prints, for intact, tampered and wrong-key exports; the
wrong-key finding is told by its ``reason``, not its words; chain/ imports one way."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from support.verify import EXPORT, KEY_HEX

import caracal_forensics as cf
from caracal_forensics.cli.app import run

CSV = EXPORT / "db.csv"
KEY_FILE = str(EXPORT / "key.hex")
CHAIN = Path(cf.__file__).parent / "chain"


def _tampered(tmp_path: Path) -> Path:
    lines = CSV.read_text(encoding="utf-8").split("\n")
    lines[5] = lines[5].replace("req-", "req-9", 1)
    path = tmp_path / "db.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _cli_json(path: Path, key_file: str, capsys, monkeypatch) -> dict:
    for name in ("AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE", "CARACAL_FORENSICS_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit):
        run(["verify", "-s", str(path), "--key-file", key_file, "--json"])
    return json.loads(capsys.readouterr().out)


def _comparable(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "generated_at"}


@pytest.mark.parametrize("case", ["intact", "tampered", "wrong_key"])
def test_verifier_gives_the_cli_report(case, tmp_path, capsys, monkeypatch) -> None:
    path = _tampered(tmp_path) if case == "tampered" else CSV
    key_file = KEY_FILE
    if case == "wrong_key":
        key_file = str(tmp_path / "wrong.hex")
        Path(key_file).write_text("11" * 32 + "\n")
    expected = _comparable(_cli_json(path, key_file, capsys, monkeypatch))
    verifier = cf.Verifier(key=Path(key_file).read_text().strip())
    on_paths = verifier.verify_paths([path])
    on_snapshot = verifier.verify_snapshot(cf.open(str(path)))
    assert isinstance(on_paths, cf.Report) and isinstance(on_snapshot, cf.Report)
    assert _comparable(on_paths.to_dict()) == expected
    assert _comparable(on_snapshot.to_dict()) == expected
    assert expected["status"] == {"intact": "intact", "tampered": "tampered",
                                  "wrong_key": "tampered"}[case]
    assert expected["likely_wrong_key"] is (case == "wrong_key")
    assert all(isinstance(f, cf.Finding) for f in on_paths.findings)


def test_verifier_holds_its_options_typed_and_hides_the_key(tmp_path) -> None:
    verifier = cf.Verifier(key=KEY_HEX, zones=["zone-alpha"], exclude="*.zst")
    assert verifier.key == bytes.fromhex(KEY_HEX) and verifier.zones == ("zone-alpha",)
    assert verifier.exclude == ("*.zst",)
    assert KEY_HEX not in repr(verifier) and repr(bytes.fromhex(KEY_HEX)) not in repr(verifier)
    with pytest.raises(cf.UsageError, match="on_bad_line"):
        cf.Verifier(on_bad_line="ignore")
    with pytest.raises(cf.InputError):
        cf.Verifier(anchor=tmp_path / "no-such-anchor.json")
    report = cf.Verifier(key=KEY_HEX, zones=["zone-alpha"]).verify_paths([CSV])
    assert [z.zone_id for z in report.zones] == ["zone-alpha"]
    assert cf.SEVERITY[cf.FindingKind.CHAIN_BREAK] == cf.Severity.FAILS


def test_wrong_key_is_a_reason_not_words() -> None:
    """likely_wrong_key reads Finding.reason: reworded details change nothing."""
    def report(reason, detail):
        finding = cf.Finding("hmac_mismatch", "z", "e", 1, "f:1", detail, reason=reason)
        return cf.Report("tampered", 2, [cf.ZoneSummary("z", 2, 1, 2, "ab", "tampered")],
                         [finding])

    worded = "all 2 chain_hmac values checked in this zone fail: the key is probably wrong"
    assert report(cf.Reason.EVERY_HMAC_FAILED, "reworded").likely_wrong_key
    assert not report(None, worded).likely_wrong_key
    again = cf.Report.from_json(report(cf.Reason.EVERY_HMAC_FAILED, "x").to_json())
    assert again.likely_wrong_key and again.findings[0].reason == "every_hmac_failed"
    assert "reason" not in report(None, worded).findings[0].to_dict()  # only when set


def _chain_imports(path: Path) -> set[str]:
    """The chain/ modules ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module \
                and node.module.startswith("caracal_forensics.chain."):
            found.add(node.module.split(".")[2])
    return {name for name in found if (CHAIN / f"{name}.py").exists()}


def test_chain_imports_point_one_way() -> None:
    graph = {p.stem: _chain_imports(p) for p in CHAIN.glob("*.py")}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        assert state.get(name) != 1, "import cycle: " + " -> ".join([*path, name])
        state[name] = 1
        for other in sorted(graph[name]):
            visit(other, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])
    assert max(len(p.read_text().splitlines()) for p in CHAIN.glob("*.py")) <= 600


def test_library_words_name_parameters_and_the_cli_names_flags(capsys, monkeypatch) -> None:
    """The report says key=None and recover_microseconds=False; only the CLI says
    --key-file (its human view adds where a key comes from)."""
    ocsf = cf.Verifier(key=KEY_HEX, recover_microseconds=False).verify_paths([EXPORT / "ocsf"])
    assert ocsf.checks["microseconds"].endswith("(recover_microseconds=False)")
    no_key = cf.Verifier().verify_paths([CSV])
    words = [f.detail for f in no_key.findings] + list(no_key.checks.values())
    assert any("no key given (key=None)" in w for w in words)
    assert not any("--" in w for w in words + list(ocsf.checks.values()))
    for name in ("AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE", "CARACAL_FORENSICS_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit):
        run(["verify", "-s", str(CSV)])
    out = capsys.readouterr().out
    assert "none given (--key-file, AUDIT_HMAC_KEY or AUDIT_HMAC_KEY_FILE)" in out
