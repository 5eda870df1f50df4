#!/usr/bin/python3
"""An SMTP server for tests/smtp_client.rs, built on aiosmtpd (not on our code).

Run with the Debian interpreter (/usr/bin/python3), which has python3-aiosmtpd.
Listens on 127.0.0.1 (port 0 = any free port) and prints "ready PORT" once it
accepts connections.

--save DIR        each message as DIR/N.eml (the bytes received, dot-unstuffed)
                  and DIR/N.json (envelope: mail_from, mail_options, rcpts
                  [[address, options]], tls, auth_login)
--transcript FILE every command line received, one per line (AUTH arguments
                  included: the tests check what went on the wire)
--pipelining      also offer PIPELINING (aiosmtpd handles commands strictly in
                  order, so pipelined input works)
--chunking        also offer CHUNKING and accept BDAT (RFC 3030), which
                  aiosmtpd itself lacks; implemented here in a few lines
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
p.add_argument("--require-starttls", action="store_true")
p.add_argument("--require-auth", nargs=2, metavar=("USER", "PASS"))
p.add_argument("--auth-plaintext", action="store_true",
               help="offer AUTH before TLS too")
p.add_argument("--auth-exclude", action="append", default=[],
               help="do not offer this SASL mechanism")
p.add_argument("--reject-rcpt", nargs=2, action="append", default=[],
               metavar=("ADDR", "REPLY"))
p.add_argument("--reject-mail", metavar="REPLY")
p.add_argument("--reject-ehlo", action="store_true")
p.add_argument("--pipelining", action="store_true",
               help="offer PIPELINING (aiosmtpd reads commands in order anyway)")
p.add_argument("--chunking", action="store_true")
p.add_argument("--smtputf8", action="store_true")
p.add_argument("--size", type=int, default=32 * 1024 * 1024)
p.add_argument("--save", metavar="DIR")
p.add_argument("--transcript", metavar="FILE")
args = p.parse_args()
warnings.filterwarnings("ignore")

REJECT = {addr.lower(): reply for addr, reply in args.reject_rcpt}
counter = 0


def record(line):
    if args.transcript:
        with open(args.transcript, "a", encoding="utf-8", errors="replace") as f:
            f.write(line + "\n")


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if args.chunking:
            responses.insert(-1, "250-CHUNKING")
        if args.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if args.reject_mail:
            return args.reject_mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = REJECT.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append([address, rcpt_options])
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        global counter
        if args.save:
            counter += 1
            base = os.path.join(args.save, f"{counter:04d}")
            with open(base + ".eml.tmp", "wb") as f:
                f.write(envelope.original_content)
            env = {
                "mail_from": envelope.mail_from,
                "mail_options": envelope.mail_options,
                "rcpts": [[a, o] for a, o in envelope.rcpt_options],
                "tls": session.ssl is not None,
                "auth_login": session.auth_data if session.authenticated else None,
            }
            with open(base + ".json", "w") as f:
                json.dump(env, f)
            os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 Ok: queued"


class Peer(SMTP):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._bdat = bytearray()
        # Record every command line before running it.
        for name, method in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._recorder(name, method)

    @staticmethod
    def _recorder(name, method):
        async def wrapped(arg):
            record(name if arg is None else f"{name} {arg}")
            return await method(arg)
        return wrapped

    async def smtp_EHLO(self, hostname):
        if args.reject_ehlo:
            await self.push("502 5.5.2 Error: command not recognized")
            return
        await super().smtp_EHLO(hostname)

    async def smtp_BDAT(self, arg):
        if not args.chunking:
            await self.push('500 Error: command "BDAT" not recognized')
            return
        parts = (arg or "").split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or (
                len(parts) == 2 and parts[1].upper() != "LAST"):
            await self.push("501 5.5.4 Syntax: BDAT size [LAST]")
            return
        data = await self._reader.readexactly(int(parts[0]))
        if not self.envelope.rcpt_tos:
            self._bdat = bytearray()
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        self._bdat.extend(data)
        if len(parts) == 1:
            await self.push(f"250 2.0.0 {len(data)} octets received")
            return
        content = bytes(self._bdat)
        self._bdat = bytearray()
        if len(content) > self.data_size_limit:
            self._set_post_data_state()
            await self.push("552 5.3.4 Error: Too much mail data")
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


def authenticator(server, session, envelope, mechanism, auth_data):
    user, password = args.require_auth
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


async def main():
    tls = None
    if args.starttls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*args.starttls)
    handler = Handler()
    kwargs = dict(
        hostname="aiosmtpd.test",
        data_size_limit=args.size,
        enable_SMTPUTF8=args.smtputf8,
        tls_context=tls,
        require_starttls=args.require_starttls,
        auth_require_tls=not args.auth_plaintext,
        auth_exclude_mechanism=args.auth_exclude,
    )
    if args.require_auth:
        kwargs.update(auth_required=True, authenticator=authenticator)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Peer(handler, loop=loop, **kwargs), "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
