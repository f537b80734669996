"""Server-side requests: every address Siyu calls is checked after DNS resolution, connected to as
checked, and only the installation's explicit setting lets it call a local network."""

from __future__ import annotations

import ipaddress
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from siyu import netguard
from siyu.config import get_settings
from siyu.errors import InvalidInput
from siyu.wecom import service as wecom
from siyu.wecom.crypto import generate_aes_key
from tenancy.factories import make_corp, make_staff, principal_of

NOT_PUBLIC = ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0",
              "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::5", "ff02::1",
              "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1"]


@pytest.fixture
def no_local(monkeypatch):
    """The installation's default: no local network is trusted."""
    monkeypatch.setattr(get_settings(), "outbound_local_networks", [])


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_private_loopback_link_local_and_mapped_addresses_are_not_public(address):
    assert not netguard.is_public(ipaddress.ip_address(address))


def test_public_addresses_are_public():
    for address in ("101.91.22.57", "8.8.8.8", "2400:3200::1", "::ffff:8.8.8.8"):
        assert netguard.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "https://169.254.169.254/latest/meta-data/",
                                 "https://[::ffff:127.0.0.1]/x", "https://0.0.0.0/", "https://localhost/x",
                                 "https://10.0.0.8/", "https://[::1]:8443/"])
def test_saving_an_address_that_is_not_public_is_refused(no_local, url):
    with pytest.raises(InvalidInput) as refused:
        netguard.check_url(url, field="url")
    assert refused.value.field == "url"


def test_plain_http_is_refused_to_public_addresses(no_local):
    with pytest.raises(InvalidInput):
        netguard.check_url("http://8.8.8.8/hook", field="url")
    assert netguard.check_url("https://8.8.8.8/hook") == "https://8.8.8.8/hook"


class _Echo:
    """A local HTTP server that records the Host header it receives."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Host"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"secret internal answer")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(monkeypatch):
    """DNS rebinding: the name is public when checked, 127.0.0.1 when looked up again. The guarded
    transport refuses; when the name resolves to an allowed address it connects there keeping Host."""
    echo = _Echo()
    try:
        monkeypatch.setattr(get_settings(), "outbound_local_networks", [])
        answers = iter(["8.8.8.8", "127.0.0.1"])
        monkeypatch.setattr(netguard, "resolve", lambda host, port: [ipaddress.ip_address(next(answers))])
        assert netguard.check_url(f"https://rebind.test:{echo.port}/", field="url")
        with pytest.raises(httpx.ConnectError):
            netguard.get(f"http://rebind.test:{echo.port}/")
        assert echo.seen == []
        # Allowed explicitly: the request reaches the checked address with its own Host header.
        monkeypatch.setattr(get_settings(), "outbound_local_networks", ["127.0.0.1/32"])
        monkeypatch.setattr(netguard, "resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
        answer = netguard.get(f"http://named.test:{echo.port}/")
        assert answer.status_code == 200 and echo.seen == [f"named.test:{echo.port}"]
    finally:
        echo.close()


def test_the_emulator_on_this_machine_needs_the_explicit_setting(monkeypatch):
    echo = _Echo()
    try:
        monkeypatch.setattr(get_settings(), "outbound_local_networks", [])
        with pytest.raises(httpx.ConnectError):
            netguard.get(f"http://127.0.0.1:{echo.port}/")
        monkeypatch.setattr(get_settings(), "outbound_local_networks", ["127.0.0.1/32"])
        assert netguard.get(f"http://127.0.0.1:{echo.port}/").status_code == 200
    finally:
        echo.close()


def _connected(session, corp):
    wecom.configure_connection(session, corp_id=corp.id, actor="t", wecom_corp_id="ww" + uuid.uuid4().hex[:12],
                               secret="secret-1", token="tok1", aes_key=generate_aes_key(),
                               base_url="https://qyapi.weixin.qq.com/cgi-bin/")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/cgi-bin/", "https://169.254.169.254/cgi-bin/",
                                 "https://attacker.example.com/cgi-bin/", "http://qyapi.weixin.qq.com/cgi-bin/"])
def test_the_wecom_base_url_is_https_to_wecom_only(session, no_local, url):
    corp = make_corp(session)
    _connected(session, corp)
    with pytest.raises(InvalidInput) as refused:
        wecom.configure_connection(session, corp_id=corp.id, actor="t", base_url=url, secret="secret-2")
    assert refused.value.field == "base_url"


def test_changing_the_base_url_needs_the_secret_again(session, monkeypatch):
    monkeypatch.setattr(get_settings(), "outbound_local_networks", ["127.0.0.1/32"])
    corp = make_corp(session)
    _connected(session, corp)
    with pytest.raises(InvalidInput) as refused:
        wecom.configure_connection(session, corp_id=corp.id, actor="t", base_url="http://127.0.0.1:9/cgi-bin/")
    assert refused.value.field == "secret"
    wecom.configure_connection(session, corp_id=corp.id, actor="t", base_url="http://127.0.0.1:9/cgi-bin/",
                               secret="secret-2")
    assert wecom.connection_view(session, corp_id=corp.id).base_url == "http://127.0.0.1:9/cgi-bin/"
    # The same URL again with nothing else: no secret needed.
    wecom.configure_connection(session, corp_id=corp.id, actor="t", base_url="http://127.0.0.1:9/cgi-bin/")


def test_webhook_endpoints_are_checked_the_same_way(session, no_local):
    from siyu.integration import service as integration

    corp = make_corp(session)
    admin = principal_of(make_staff(session, corp, roles=("administrator",)))
    for url in ("http://127.0.0.1:8000/hook", "https://169.254.169.254/hook", "https://[::ffff:10.0.0.1]/h"):
        with pytest.raises(InvalidInput) as refused:
            integration.create_endpoint(session, principal=admin, url=url, events=["customer.invested"])
        assert refused.value.field == "url"


def test_the_firm_hook_is_https_and_public(session, no_local):
    from siyu.acquisition import verification

    corp = make_corp(session)
    for url in ("http://hooks.example.com/verify", "https://127.0.0.1/verify", "https://[::1]/verify"):
        with pytest.raises(InvalidInput) as refused:
            verification.save_hook(session, corp_id=corp.id, actor="t", url=url, secret="s" * 20)
        assert refused.value.field == "url"


def test_a_refused_webhook_delivery_records_a_generic_error(monkeypatch):
    from siyu.integration import jobs

    monkeypatch.setattr(get_settings(), "outbound_local_networks", [])
    text = jobs.describe_failure(httpx.ConnectError("[Errno 111] Connection refused to 10.0.0.5:6379"))
    assert "10.0.0.5" not in text and "Errno" not in text


def test_a_name_that_does_not_resolve_now_is_saved_and_checked_when_called(no_local, monkeypatch):
    def nowhere(host, port):
        raise OSError("no such name")

    monkeypatch.setattr(netguard, "resolve", nowhere)
    assert netguard.check_url("https://hooks.firm.test/siyu") == "https://hooks.firm.test/siyu"
    with pytest.raises(InvalidInput):
        netguard.check_url("http://hooks.firm.test/siyu")
    with pytest.raises(httpx.ConnectError):
        netguard.get("https://hooks.firm.test/siyu")
