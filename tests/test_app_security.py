"""Nothing leaks from the app: image paths stay inside the annotations, requests for a foreign Host or
from a foreign Origin are refused, logins are throttled, uploads are bounded.

The policies are tested as units; then two real servers on 127.0.0.1 (one without `--auth`, one with a
tampered annotation document and logins) are probed with plain HTTP requests.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from app_server import serve_app
from test_app_data import annotated_demo, fresh_db

from app.access import LoginRefused, LoginThrottle
from app.context import AppContext, UnsafePath, contained_file
from app.demo import DEMO_PASSWORD
from app.guard import HostPolicy
from review import ReviewService


@pytest.fixture(scope="session")
def demo_root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return annotated_demo(synth_root, tmp_path_factory.mktemp("app"))


# image paths ---------------------------------------------------------------------------------------------


def test_contained_file_refuses_paths_that_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "ann" / "scenes"
    scene = root / "scene0000_00"
    (scene / "crops").mkdir(parents=True)
    (scene / "crops" / "a.jpg").write_bytes(b"jpg")
    (tmp_path / "review.db").write_bytes(b"secret")
    (scene / "crops" / "out.jpg").symlink_to(tmp_path / "review.db")
    assert contained_file(root, scene, "crops/a.jpg") == (scene / "crops" / "a.jpg").resolve()
    assert contained_file(root, scene, "crops/missing.jpg") is None
    assert contained_file(root, scene, "../scene0000_00/crops/a.jpg") is not None  # still inside
    for bad in ["../../../review.db", "../../review.db", str(tmp_path / "review.db"), "crops/out.jpg"]:
        with pytest.raises(UnsafePath, match="leaves the annotations folder|absolute"):
            contained_file(root, scene, bad)
    for bad in [None, 3, ["crops/a.jpg"], "", "crops/a\x00.jpg"]:
        with pytest.raises(UnsafePath, match="not a file name"):
            contained_file(root, scene, bad)


def _tampered_annotations(demo_root: Path, work: Path) -> tuple[Path, int]:
    """A copy of the demo's annotations at work/ann whose first object with a caption has
    crops[0] = "../../../review.db" (work/review.db from its scene folder) and an absolute highlight."""
    annotations = work / "ann"
    shutil.copytree(demo_root / "densescan", annotations)
    doc_path = annotations / "scenes" / "scene0000_00" / "annotation.json"
    doc = json.loads(doc_path.read_text())
    obj = next(o for o in doc["objects"] if o.get("caption") and o.get("views"))
    obj["views"][0]["crops"][0] = "../../../review.db"
    obj["views"][0]["highlight"] = str(work / "review.db")
    doc_path.write_text(json.dumps(doc))
    return annotations, obj["object_id"]


def test_item_images_skip_a_tampered_path_with_a_note(demo_root: Path, tmp_path: Path) -> None:
    annotations, object_id = _tampered_annotations(demo_root, tmp_path)
    service = ReviewService(fresh_db(demo_root, tmp_path / "review.db"))
    try:
        ctx = AppContext(service, None, annotations)
        item = next(
            i
            for i in service.list_items(limit=5000)
            if i.key.scene_id == "scene0000_00" and i.key.object_id == str(object_id)
        )
        found = ctx.item_images(item)
        served = [Path(p) for p, _ in found.crops + found.highlights]
        assert served, "the object's other crops are still shown"
        assert all(p.is_relative_to(annotations.resolve() / "scenes") for p in served)
        assert not any(p.name == "review.db" for p in served)
        assert len(found.skipped) == 2
        assert found.skipped[0] == (
            "scenes/scene0000_00/annotation.json: image path '../../../review.db' leaves the annotations "
            "folder; skipped"
        )
        assert "absolute" in found.skipped[1]
        with pytest.warns(UserWarning, match="review.db"):  # the toast (outside a request: a warning)
            crops, highlights = ctx.images(item)
        assert (crops, highlights) == (found.crops, found.highlights)
        assert ctx.allowed_paths() == [str((annotations / "scenes").resolve())]
        assert str((tmp_path / "review.db").resolve()) in ctx.blocked_paths()
    finally:
        service.close()


# Host and Origin -----------------------------------------------------------------------------------------


def test_host_policy_on_loopback() -> None:
    policy = HostPolicy.for_server("127.0.0.1")
    for host in ["127.0.0.1:7860", "localhost:7860", "[::1]:7860", "LOCALHOST:7860"]:
        assert policy.allows_host(host, 7860), host
    for host in ["evil.example:7860", "127.0.0.1:7861", "localhost", "", "127.0.0.1:x", "a b:7860"]:
        assert not policy.allows_host(host, 7860), host
    assert policy.allows_origin("http://localhost:7860", 7860)
    for origin in [
        "http://evil.example:7860",
        "null",
        "http://127.0.0.1:8080",
        "file://",
        "ftp://localhost:7860",
    ]:
        assert not policy.allows_origin(origin, 7860), origin


def test_host_policy_on_all_interfaces_and_behind_a_proxy() -> None:
    anywhere = HostPolicy.for_server("0.0.0.0")
    assert anywhere.allows_host("192.168.1.5:7860", 7860) and anywhere.allows_host("localhost:7860", 7860)
    assert not anywhere.allows_host("evil.example:7860", 7860)  # a rebinding page always uses a name
    lan = HostPolicy.for_server("192.168.1.5")
    assert lan.allows_host("192.168.1.5:7860", 7860) and not lan.allows_host("localhost:7860", 7860)
    proxied = HostPolicy.for_server("127.0.0.1", ["review.example.org", "tunnel.example:8443"])
    assert proxied.allows_host("review.example.org", 7860)
    assert proxied.allows_host("review.example.org:443", 7860)
    assert proxied.allows_origin("https://review.example.org", 7860)
    assert proxied.allows_host("tunnel.example:8443", 7860)
    assert not proxied.allows_host("tunnel.example", 7860)
    assert not proxied.allows_origin("https://evil.example", 7860)
    with pytest.raises(ValueError, match="'a b' is not a host name"):
        HostPolicy.for_server("127.0.0.1", ["a b"])


# login throttle ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_locks_a_user_after_five_failures_with_a_growing_delay() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    checked: list[str] = []

    def password(secret: str):
        return lambda: checked.append(secret) or secret == "right"

    for _ in range(5):
        assert throttle.attempt("ann", "10.0.0.1", password("wrong")) is False
    with pytest.raises(LoginRefused, match=r"too many failed logins for 'ann'.*try again in 30 s") as refused:
        throttle.attempt("ann", "10.0.0.2", password("right"))  # right password, other address: refused
    assert refused.value.retry_after == 30 and checked == ["wrong"] * 5  # the password was not even checked
    assert throttle.attempt("bob", "10.0.0.3", password("right"))  # other users are not affected
    clock.now += 31
    for _ in range(5):
        assert not throttle.attempt("ANN ", "10.0.0.1", password("wrong"))  # same user, any case/spacing
    assert throttle.locked_for("ann", None) == pytest.approx(60)  # the second lockout doubles
    clock.now += 61
    assert throttle.attempt("ann", "10.0.0.1", password("right"))
    for _ in range(4):
        assert not throttle.attempt("ann", "10.0.0.1", password("wrong"))
    assert throttle.attempt("ann", "10.0.0.1", password("right"))  # 4 failures then success: fine
    assert throttle.locked_for("ann", None) == 0


def test_throttle_counts_per_address_and_forgives_after_a_quiet_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, max_address_failures=8)
    for n in range(8):
        throttle.attempt(f"user{n}", "10.9.9.9", lambda: False)  # one try per name: no user lock
    with pytest.raises(LoginRefused, match="from 10.9.9.9"):
        throttle.attempt("someone", "10.9.9.9", lambda: True)
    assert throttle.attempt("someone", "10.1.1.1", lambda: True)
    clock.now += 30 + throttle.window_s
    for _ in range(5):
        throttle.attempt("ann", "10.0.0.1", lambda: False)
    assert throttle.locked_for("ann", None) == pytest.approx(30)  # after a quiet window: back to 30 s


def test_throttle_counts_attempts_sent_at_once() -> None:
    throttle = LoginThrottle()
    checked = []
    start = threading.Barrier(20)

    def guess() -> None:
        start.wait()
        with contextlib.suppress(LoginRefused):
            throttle.attempt("ann", "10.0.0.1", lambda: checked.append(1) or time.sleep(0.05) or False)

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checked) == 5


# served for real -----------------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    port: int
    service: ReviewService
    work: Path
    object_id: int = -1


@pytest.fixture(scope="module")
def open_server(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`python app.py` without --auth: every request acts as the local admin."""
    work = tmp_path_factory.mktemp("open")
    demo_root = annotated_demo(synth_root, tmp_path_factory.mktemp("app"))
    service = ReviewService(fresh_db(demo_root, work / "review.db"))
    ctx = AppContext(service, None, demo_root / "densescan", auth=False, local_user="local")
    from app.access import ensure_local_user

    ensure_local_user(service, "local")
    with serve_app(ctx, work / "export") as url:
        yield Served(url, urlsplit(url).port, service, work)


def _call(url: str, api: str, data: list, **kwargs) -> httpx.Response:
    """POST a Gradio /call/ request; on success, the streamed result (the second request)."""
    response = httpx.post(f"{url}gradio_api/call/{api}", json={"data": data}, timeout=30, **kwargs)
    if response.status_code != 200:
        return response
    event = response.json()["event_id"]
    cookies = kwargs.get("cookies")
    return httpx.get(f"{url}gradio_api/call/{api}/{event}", timeout=60, cookies=cookies)


def test_foreign_host_is_refused(open_server: Served) -> None:
    page = httpx.get(open_server.url, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    local = httpx.get(open_server.url, headers={"Host": f"localhost:{open_server.port}"}, timeout=30)
    assert local.status_code == 200
    rebound = httpx.get(open_server.url, headers={"Host": f"evil.example:{open_server.port}"}, timeout=30)
    assert rebound.status_code == 403
    assert "does not answer to the host 'evil.example" in rebound.text and "--allowed-host" in rebound.text
    config = httpx.get(open_server.url + "config", headers={"Host": "evil.example"}, timeout=30)
    assert config.status_code == 403


def test_dns_rebinding_page_cannot_add_an_admin(open_server: Served) -> None:
    url, port = open_server.url, open_server.port
    rebound = _call(
        url,
        "admin_add_user",
        ["mallory", "a-long-password-9", "admin"],
        headers={"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
    )
    assert rebound.status_code == 403
    cross_site = _call(
        url,
        "admin_add_user",
        ["mallory", "a-long-password-9", "admin"],
        headers={"Origin": "http://evil.example"},
    )
    assert cross_site.status_code == 403 and "cross-site" in cross_site.text
    assert "mallory" not in {u.username for u in open_server.service.list_users()}
    same_origin = _call(
        url,
        "admin_add_user",
        ["carol", "a-long-password-8", "annotator"],
        headers={"Origin": f"http://127.0.0.1:{port}"},
    )
    assert same_origin.status_code == 200 and "added" in same_origin.text
    assert "carol" in {u.username for u in open_server.service.list_users()}


@pytest.fixture(scope="module")
def auth_server(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """With --auth, over annotations whose document names ../../../review.db as a crop."""
    work = tmp_path_factory.mktemp("auth")
    demo_root = annotated_demo(synth_root, tmp_path_factory.mktemp("app"))
    annotations, object_id = _tampered_annotations(demo_root, work)
    service = ReviewService(fresh_db(demo_root, work / "review.db"))
    ctx = AppContext(service, synth_root, annotations, auth=True)
    with serve_app(ctx, work / "export", throttle=LoginThrottle(max_address_failures=1000)) as url:
        yield Served(url, urlsplit(url).port, service, work, object_id)


def _login(served: Served, user: str, password: str) -> httpx.Response:
    return httpx.post(served.url + "login", data={"username": user, "password": password}, timeout=30)


def test_tampered_crop_is_neither_listed_nor_served(auth_server: Served) -> None:
    cookies = _login(auth_server, "annotator", DEMO_PASSWORD).cookies
    result = _call(
        auth_server.url, "explore_object", ["scene0000_00", "rgb", auth_server.object_id], cookies=cookies
    )
    assert result.status_code == 200 and "event: complete" in result.text, result.text[-500:]
    data = json.loads(result.text.split("event: complete\ndata:", 1)[1].strip().splitlines()[0])
    panel, gallery = data[2], data[3]
    assert "scenes/scene0000_00/annotation.json: image path &#x27;../../../review.db&#x27; leaves" in panel
    assert str(auth_server.work / "ann") not in panel  # the note does not reveal where the data lives
    names = [entry["image"]["orig_name"] for entry in gallery]
    assert names and all(name.endswith(".jpg") for name in names), names  # the other images are shown
    db = (auth_server.work / "review.db").resolve()
    direct = httpx.get(f"{auth_server.url}gradio_api/file={db}", cookies=cookies, timeout=30)
    assert direct.status_code in (403, 404) and b"SQLite" not in direct.content


def test_logins_are_throttled_end_to_end(auth_server: Served) -> None:
    for _ in range(5):
        assert _login(auth_server, "reviewer", "wrong-password").status_code == 400
    refused = _login(auth_server, "reviewer", DEMO_PASSWORD)  # the right password, during the lockout
    assert refused.status_code == 400 and "access-token" not in " ".join(refused.cookies.keys())
    assert "too many failed logins for 'reviewer' or from 127.0.0.1" in refused.json()["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 30
    assert _login(auth_server, "admin", DEMO_PASSWORD).status_code == 200  # others still log in
    page = httpx.get(auth_server.url, timeout=30)
    assert "logins pause for 30 s" in page.text


def test_uploads_have_a_size_limit(auth_server: Served) -> None:
    cookies = _login(auth_server, "annotator", DEMO_PASSWORD).cookies
    small = httpx.post(
        auth_server.url + "gradio_api/upload",
        files={"files": ("a.txt", b"hello")},
        cookies=cookies,
        timeout=30,
    )
    assert small.status_code == 200
    big = httpx.post(
        auth_server.url + "gradio_api/upload",
        files={"files": ("b.bin", b"\0" * (21 << 20))},
        cookies=cookies,
        timeout=60,
    )
    assert big.status_code == 413
