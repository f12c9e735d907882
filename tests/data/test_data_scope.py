"""SCOPe headers, the remote-homology subset (synthetic and the real ASTRAL 2.07 file), and downloads."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections import defaultdict

import pytest

from hidden_geometry.data import scope as scope_module
from hidden_geometry.data.fasta import FastaRecord
from hidden_geometry.data.scope import (
    download_with_retries,
    parse_astral_header,
    read_scope,
    remote_homology_subset,
    scope_items,
)
from hidden_geometry.errors import InputError

SCOPE_FILE = "scope/astral-scopedom-seqres-gd-sel-gs-bib-40-2.07.fa"


def test_parse_header_levels():
    domain = parse_astral_header(FastaRecord("d1dlwa_", "a.1.1.1 (A:) Protozoan/bacterial hemoglobin", "SLF", 3))
    assert (domain.scop_class, domain.fold, domain.superfamily, domain.family) == ("a", "a.1", "a.1.1", "a.1.1.1")
    assert domain.description == "(A:) Protozoan/bacterial hemoglobin"
    assert domain.to_dict()["length"] == 3


@pytest.mark.parametrize("description", ["", "a.1.1 (A:) three parts", "z.1.1.1 bad class", "a.b.1.1 x"])
def test_header_without_sccs_names_file_and_line(description):
    with pytest.raises(InputError, match=r"astral.fa:12: header of 'd1' has no SCOPe sccs"):
        parse_astral_header(FastaRecord("d1", description, "MK", 12), "astral.fa")


def make_domains(tmp_path, spec: dict[str, int], length: int = 50):
    """An ASTRAL-like file with `count` domains per sccs; returns the parsed domains."""
    lines = []
    n = 0
    for sccs, count in spec.items():
        for _ in range(count):
            lines += [f">d{n:05d}_ {sccs} (A:) made up", "m" * length]
            n += 1
    path = tmp_path / "astral.fa"
    path.write_text("\n".join(lines) + "\n")
    return read_scope(path)


def test_subset_keeps_superfamilies_with_enough_members_over_two_families(tmp_path):
    domains = make_domains(
        tmp_path,
        {
            "a.1.1.1": 3, "a.1.1.2": 2,  # a.1.1: 5 members, 2 families -> kept
            "b.2.1.1": 6,  # b.2.1: 6 members, one family -> dropped
            "c.3.1.1": 2, "c.3.1.2": 1,  # c.3.1: 3 members -> dropped
            "h.4.1.1": 3, "h.4.1.2": 3,  # class h: excluded
        },
    )
    kept, summary = remote_homology_subset(domains, min_per_superfamily=5, min_families=2)
    assert {d.superfamily for d in kept} == {"a.1.1"}
    assert summary.n_kept == 5 and summary.n_superfamilies == 1 and summary.n_families == 2
    assert summary.dropped["class_excluded"] == 6
    assert summary.dropped["superfamily_too_small_or_one_family"] == 9
    one_family_ok, _ = remote_homology_subset(domains, min_per_superfamily=5, min_families=1)
    assert {d.superfamily for d in one_family_ok} == {"a.1.1", "b.2.1"}
    with_h, _ = remote_homology_subset(domains, min_per_superfamily=5, classes="abcdefgh")
    assert {d.superfamily for d in with_h} == {"a.1.1", "h.4.1"}


def test_subset_length_bounds_and_seeded_cap(tmp_path):
    domains = make_domains(tmp_path, {"a.1.1.1": 10, "a.1.1.2": 10, "b.1.1.1": 4, "b.1.1.2": 4})
    capped, summary = remote_homology_subset(domains, min_per_superfamily=4, max_per_superfamily=6, seed=1)
    counts = defaultdict(int)
    for d in capped:
        counts[d.superfamily] += 1
    assert dict(counts) == {"a.1.1": 6, "b.1.1": 6}
    assert summary.dropped["superfamily_cap"] == (20 - 6) + (8 - 6)
    assert [d.id for d in capped] == sorted(d.id for d in capped)  # input order kept
    again, _ = remote_homology_subset(domains, min_per_superfamily=4, max_per_superfamily=6, seed=1)
    other, _ = remote_homology_subset(domains, min_per_superfamily=4, max_per_superfamily=6, seed=2)
    assert [d.id for d in again] == [d.id for d in capped]
    assert [d.id for d in other] != [d.id for d in capped]
    none_long, summary = remote_homology_subset(domains, max_length=49)
    assert none_long == [] and summary.dropped["length_out_of_bounds"] == 28


def test_subset_parameter_errors(tmp_path):
    domains = make_domains(tmp_path, {"a.1.1.1": 2})
    with pytest.raises(InputError, match="max_length"):
        remote_homology_subset(domains, min_length=10, max_length=5)
    with pytest.raises(InputError, match="max_per_superfamily"):
        remote_homology_subset(domains, max_per_superfamily=0)


def test_scope_items_labels_and_group(tmp_path):
    domains = make_domains(tmp_path, {"a.1.1.1": 1, "b.2.3.4": 1}, length=5)
    table = scope_items(domains, label="fold")
    assert table.labels() == ["a.1", "b.2"]
    assert table.labels("group") == ["a.1.1.1", "b.2.3.4"]
    assert table.labels("superfamily") == ["a.1.1", "b.2.3"]
    assert table.labels("sequence") == ["MMMMM", "MMMMM"]
    with pytest.raises(InputError, match="label must be one of"):
        scope_items(domains, label="genus")


def test_real_astral_207_paper_like_subset(shared_data):
    domains = read_scope(shared_data / SCOPE_FILE)
    assert len(domains) == 14323  # the README's count of this file
    assert all(d.sequence.isupper() for d in domains[:100])
    kept, summary = remote_homology_subset(domains, min_per_superfamily=10, min_families=2)
    members = defaultdict(list)
    for d in kept:
        members[d.superfamily].append(d)
    assert len(members) == summary.n_superfamilies
    assert all(len(m) >= 10 and len({d.family for d in m}) >= 2 for m in members.values())
    assert {d.scop_class for d in kept} <= set("abcdefg")
    # The paper had 10,256 sequences in 288 superfamilies on SCOPe 2.08; 2.07 with the same filters is close.
    assert 9000 <= summary.n_kept <= 11000 and 250 <= summary.n_superfamilies <= 320
    excluded = {d.superfamily for d in domains} - set(members)
    by_sf = defaultdict(list)
    for d in domains:
        by_sf[d.superfamily].append(d)
    assert all(len(by_sf[sf]) < 10 or len({d.family for d in by_sf[sf]}) < 2 for sf in excluded)


# ---- downloads ---------------------------------------------------------------------------------------------


def test_download_file_url_with_checksum(tmp_path):
    source = tmp_path / "src.fa"
    source.write_bytes(b">a\nMK\n")
    digest = hashlib.sha256(b">a\nMK\n").hexdigest()
    dest = download_with_retries(source.as_uri(), tmp_path / "out" / "dl.fa", sha256=digest)
    assert dest.read_bytes() == b">a\nMK\n"


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    source = tmp_path / "src.fa"
    source.write_bytes(b"data")
    with pytest.raises(InputError, match="checksum mismatch"):
        download_with_retries(source.as_uri(), tmp_path / "out.fa", retries=1, sha256="0" * 64, backoff_s=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.fa"]


def test_download_missing_local_file_is_not_retried(tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(scope_module.time, "sleep", sleeps.append)
    with pytest.raises(InputError, match="download of file:"):
        download_with_retries((tmp_path / "nope").as_uri(), tmp_path / "out", retries=3)
    assert sleeps == []


def test_bad_checksum_string_is_refused(tmp_path):
    with pytest.raises(InputError, match="64 hex digits"):
        download_with_retries("file:///x", tmp_path / "o", sha256="abc")


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves /data after `failures` 503 answers; /missing is a 404."""

    body = b">a\nMKV\n"
    failures = 0
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path == "/short":  # promises more bytes than it sends, then closes: a cut transfer
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body) + 100))
            self.end_headers()
            self.wfile.write(self.body)
            self.close_connection = True
            return
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), FlakyHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    FlakyHandler.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_http_download_retries_transient_errors(http_server, tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(scope_module.time, "sleep", sleeps.append)
    FlakyHandler.failures = 2
    digest = hashlib.sha256(FlakyHandler.body).hexdigest()
    dest = download_with_retries(f"{http_server}/data", tmp_path / "dl.fa", retries=3, sha256=digest, backoff_s=1.0)
    assert dest.read_bytes() == FlakyHandler.body
    assert FlakyHandler.requests == ["/data"] * 3
    assert sleeps == [1.0, 2.0]  # growing waits between attempts
    # A file already there with the right checksum is not fetched again.
    download_with_retries(f"{http_server}/data", dest, sha256=digest)
    assert len(FlakyHandler.requests) == 3


def test_http_download_gives_up_after_retries(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr(scope_module.time, "sleep", lambda s: None)
    FlakyHandler.failures = 10
    with pytest.raises(InputError, match=r"failed after 3 attempts: HTTP 503"):
        download_with_retries(f"{http_server}/data", tmp_path / "dl.fa", retries=2)
    assert not (tmp_path / "dl.fa").exists() and list(tmp_path.iterdir()) == []


def test_http_404_is_not_retried(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr(scope_module.time, "sleep", lambda s: None)
    FlakyHandler.failures = 0
    with pytest.raises(InputError, match="HTTP 404"):
        download_with_retries(f"{http_server}/missing", tmp_path / "dl.fa", retries=3)
    assert FlakyHandler.requests == ["/missing"]


def test_http_cut_transfer_is_retried_then_refused(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr(scope_module.time, "sleep", lambda s: None)
    with pytest.raises(InputError, match=r"failed after 2 attempts: (short transfer: 7 of 107 bytes|IncompleteRead)"):
        download_with_retries(f"{http_server}/short", tmp_path / "dl.fa", retries=1)
    assert FlakyHandler.requests == ["/short", "/short"] and list(tmp_path.iterdir()) == []
