"""Forwards TCP connections: listen_host:listen_port -> target_host:target_port.

Usage: tcp_forward.py <listen_host> <listen_port> <target_host> <target_port>
Prints "ready" once it listens. For tests whose browser may reach the gateway's HTTP
API (signalling) only through a host in between, as the TURN server is for media.
"""

import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(listen_host, listen_port, target_host, target_port):
    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(handle, listen_host, listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    h, p, th, tp = sys.argv[1:5]
    asyncio.run(main(h, int(p), th, int(tp)))
