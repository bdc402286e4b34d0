"""An HTTP/1.1 proxy on 127.0.0.1 that holds every request for a fixed delay before
forwarding it, as a real AWS region's round trip would (scripts/bench-metadata.sh).

  delay_proxy.py PORT UPSTREAM_HOST UPSTREAM_PORT DELAY_MS

One upstream connection per client connection; requests and answers are framed by
Content-Length (what Kinesis' JSON protocol uses). Stops on SIGTERM.
"""
import asyncio
import signal
import sys


async def read_message(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return head + body


async def serve(client_reader, client_writer, upstream, delay):
    up_reader, up_writer = await asyncio.open_connection(*upstream)
    try:
        while True:
            try:
                request = await read_message(client_reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            await asyncio.sleep(delay)
            up_writer.write(request)
            await up_writer.drain()
            client_writer.write(await read_message(up_reader))
            await client_writer.drain()
    finally:
        up_writer.close()
        client_writer.close()


async def main(port, host, upstream_port, delay_ms):
    delay = delay_ms / 1000
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, (host, upstream_port), delay), "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
