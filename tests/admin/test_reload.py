"""SIGHUP reloads the password file (and JWT keys, ACL) without dropping connections."""

from __future__ import annotations

import signal
from pathlib import Path

from roost.auth.passwords import hash_password
from roost.mqtt import ReasonCode
from roost.mqtt.packets import Pingreq, Pingresp
from tests.broker import BrokerProcess, RawClient, free_port


def write_passwords(path: Path, user: str, password: str) -> None:
    path.write_text(f"{user}:{hash_password(password, iterations=1000).encode()}\n")


def login(port: int, client_id: str, password: str) -> ReasonCode:
    c = RawClient(port, level=5)
    try:
        return c.connect(client_id, username="dev", password=password.encode()).reason_code
    finally:
        c.close()


def test_sighup_reloads_the_password_file(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    write_passwords(pwfile, "dev", "old-pass")
    config = (f'[auth]\npassword_file = "{pwfile}"\n'
              f'[http]\nbind = "127.0.0.1:{free_port()}"\n'
              '[[listeners]]\nallow_anonymous = false\n')
    with BrokerProcess(config) as broker:
        assert login(broker.port, "a", "old-pass") == ReasonCode.SUCCESS
        stays = RawClient(broker.port, level=5)
        assert stays.connect("stays", username="dev",
                             password=b"old-pass").reason_code == ReasonCode.SUCCESS

        write_passwords(pwfile, "dev", "new-pass")
        mark = len(broker.log())
        broker.send_signal(signal.SIGHUP)
        broker.wait_log("authentication and ACL reloaded", start=mark)
        assert login(broker.port, "b", "new-pass") == ReasonCode.SUCCESS
        assert login(broker.port, "c", "old-pass") == ReasonCode.BAD_USER_NAME_OR_PASSWORD
        # The connection made with the old password is still open.
        stays.send(Pingreq())
        stays.expect(Pingresp)

        # A broken file is refused; the previous one stays in force.
        pwfile.write_text("this line is not user:hash\n")
        mark = len(broker.log())
        broker.send_signal(signal.SIGHUP)
        log = broker.wait_log("reload failed", start=mark)
        line = next(ln for ln in log[mark:].splitlines() if "reload failed" in ln)
        assert str(pwfile) in line and "ERROR" in line
        assert login(broker.port, "d", "new-pass") == ReasonCode.SUCCESS
        stays.send(Pingreq())
        stays.expect(Pingresp)
