/**
 * A loopback TCP proxy that makes a local server look like a remote one: every byte is delayed
 * by half the round-trip time in each direction, a new connection pays one round trip before
 * its first byte arrives (the TCP handshake), and an optional bandwidth cap is shared by every
 * connection through the proxy (one link). Bytes are passed on unchanged, in order.
 *
 * Each direction of a connection keeps at most `windowBytes` in flight; past that it stops
 * reading from its sender until the delayed bytes have gone out. That stands in for TCP's
 * window, whose size (with the round trip) is what limits one connection's throughput on a real
 * link: 4 MiB is Linux's default `tcp_wmem` maximum.
 *
 * Loopback only (it listens on 127.0.0.1 and forwards to a 127.0.0.1 target) and bounded: a
 * connection idle for `idleMs` is closed, and `close()` ends everything at once.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface LatencyProxyOptions {
  /** Round-trip time to add, ms. */
  rttMs: number;
  /** Cap on the bytes per second the link carries, each direction; unset: no cap. */
  bandwidthBytesPerS?: number;
  /**
   * Bytes one direction of a connection may have in flight (TCP window stand-in).
   * @default 4 MiB
   */
  windowBytes?: number;
  /**
   * A connection with no traffic for this long is closed.
   * @default 120000
   */
  idleMs?: number;
}

export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`: use it where the target's URL was used. */
  url: string;
  port: number;
  /** Bytes passed through so far: client to target, and back. */
  bytes: { up: number; down: number };
  close(): Promise<void>;
}

/**
 * One direction of the link: bytes get a departure time (now + one-way delay, after whatever is
 * still queued in front of them on a capped link) and are written in order when it comes.
 */
class DelayLine {
  private readonly queue: Array<{ at: number; chunk: Buffer }> = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  /** When the shared link is free again (capped links only). */
  static linkFree = new WeakMap<object, number>();

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly oneWayMs: number,
    private readonly notBefore: number,
    private readonly link: object,
    private readonly bandwidthBytesPerS: number | undefined,
    private readonly windowBytes: number,
    private readonly count: (n: number) => void,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => this.push(null));
  }

  private ended = false;

  private push(chunk: Buffer | null): void {
    const now = performance.now();
    let at = Math.max(now + this.oneWayMs, this.notBefore);
    if (chunk && this.bandwidthBytesPerS) {
      // Serialisation on the shared link: the chunk leaves after the ones already sent on it.
      const free = Math.max(DelayLine.linkFree.get(this.link) ?? 0, now);
      const done = free + (chunk.length / this.bandwidthBytesPerS) * 1000;
      DelayLine.linkFree.set(this.link, done);
      at = Math.max(at, done + this.oneWayMs);
    }
    if (chunk === null) this.ended = true;
    this.queue.push({ at, chunk: chunk ?? Buffer.alloc(0) });
    if (chunk) {
      this.inFlight += chunk.length;
      if (this.inFlight >= this.windowBytes) this.from.pause();
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    const wait = Math.max(0, this.queue[0]!.at - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.at <= now + 0.5) {
      const { chunk } = this.queue.shift()!;
      if (chunk.length === 0 && this.ended && this.queue.length === 0) {
        this.to.end();
        return;
      }
      if (chunk.length > 0) {
        this.to.write(chunk);
        this.count(chunk.length);
        this.inFlight -= chunk.length;
      }
    }
    if (this.inFlight < this.windowBytes && this.from.isPaused()) this.from.resume();
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.queue.length = 0;
  }
}

/** Starts a proxy on a free loopback port in front of `target` (`http://127.0.0.1:<port>`). */
export async function startLatencyProxy(target: string, options: LatencyProxyOptions): Promise<LatencyProxy> {
  const { hostname, port: targetPort } = new URL(target);
  if (hostname !== '127.0.0.1' && hostname !== 'localhost') throw new Error(`latency proxy: loopback targets only, not ${hostname}`);
  const oneWay = options.rttMs / 2;
  const windowBytes = options.windowBytes ?? 4 * 1024 * 1024;
  const idleMs = options.idleMs ?? 120_000;
  // One link each way: the cap applies to each direction, shared by every connection.
  const linkUp = {};
  const linkDown = {};
  const sockets = new Set<Socket>();
  const bytes = { up: 0, down: 0 };
  const server: Server = createServer((client) => {
    const started = performance.now();
    const upstream = connect(Number(targetPort), '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.setTimeout(idleMs, () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    // The handshake's round trip: the first request byte reaches the server 1.5 RTT after connect.
    const up = new DelayLine(client, upstream, oneWay, started + options.rttMs + oneWay, linkUp, options.bandwidthBytesPerS, windowBytes, (n) => (bytes.up += n));
    const down = new DelayLine(upstream, client, oneWay, 0, linkDown, options.bandwidthBytesPerS, windowBytes, (n) => (bytes.down += n));
    const teardown = () => {
      up.stop();
      down.stop();
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    // A graceful end travels through the delay line like data (see DelayLine.push(null)).
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
