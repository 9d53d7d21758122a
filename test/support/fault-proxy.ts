/**
 * A fault-injecting HTTP proxy for tests, on 127.0.0.1: forwards to a real server (MLflow,
 * the local Hub, moto) and, for requests matching a rule, answers with a status, drops the
 * connection (before or in the middle of the request body), stalls, holds the request until the
 * proxy is thawed, or forwards the request and then drops the response (the server applied it,
 * the client never hears). Every request is logged so tests can count attempts, and every byte
 * of request bodies forwarded upstream is counted (`bytesForwarded`, and per request), so crash
 * tests can tell what was re-sent, and so is how many requests were open when each arrived
 * (`inFlightAtStart`: the client's concurrency, seen from outside). A tripwire freezes the proxy at an exact byte count: no byte
 * past it reaches the server (see `test/support/crash-harness.ts`).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll } from 'vitest';

export type Fault = 'status' | 'drop' | 'drop-mid-body' | 'stall' | 'drop-response' | 'hold' | 'delay';

export interface FaultRule {
  /** Which requests the rule applies to (header names in lower case). @default every request */
  match?: (req: { method: string; path: string; headers: Record<string, string | string[] | undefined> }) => boolean;
  /** How many matching requests it applies to before it expires. @default Infinity */
  times?: number;
  /** Fraction of matching requests it applies to (0..1], decided by `random`. @default 1 */
  probability?: number;
  fault: Fault;
  /** For `status`. */
  status?: number;
  /** Extra response headers for `status` (e.g. Retry-After). */
  headers?: Record<string, string>;
  /** Response body for `status`. */
  body?: string;
  /** For `delay`: how long to wait before forwarding the request (a slow link's round trips). @default 100 */
  delayMs?: number;
  /** For `stall`: how long to hold the request before dropping it. @default 60000 */
  stallMs?: number;
  /** For `hold`: called when a request is held (it stays open, unanswered, until the client goes or the proxy is thawed). */
  onHold?: (req: { method: string; path: string }) => void;
  /** For `drop-response`: called when the server's answer has arrived, just before it is dropped (the server has done the work). */
  onResponse?: (req: { method: string; path: string }) => void;
}

export interface ProxyLogEntry {
  method: string;
  path: string;
  /** The request's `Content-Range`, when it had one (GCS resumable chunks). */
  contentRange?: string;
  /** The request's `Expect` header, when it had one (`100-continue`: its body waited for the go-ahead). */
  expect?: string;
  /** Status returned to the client, when one was (for `drop-response`, the server's, which the client never saw). */
  status?: number;
  /** The fault applied, if any. */
  fault?: Fault;
  /** Request body bytes forwarded upstream. */
  bytes: number;
  /** Requests open at the proxy when this one arrived, itself included (concurrency seen from outside). */
  inFlightAtStart: number;
}

export interface FaultProxy {
  url: string;
  requests: ProxyLogEntry[];
  /** Request body bytes forwarded upstream so far, all requests together. */
  readonly bytesForwarded: number;
  /** Client connections open now (kept alive between requests too). */
  readonly openConnections: number;
  addRule(rule: FaultRule): void;
  clearRules(): void;
  /** Clears the rules and the request log: a clean proxy for the next test. */
  reset(): void;
  /**
   * Freezes the proxy once `bytes` request-body bytes in total have been forwarded: the chunk
   * that crosses the line is cut there, nothing more goes upstream, and new requests are held
   * unanswered (their bodies read and discarded); then `onTrip` is called (synchronously, from
   * the data handler). {@link thaw} ends the freeze. `bytes` must be a whole number.
   */
  setTripwire(bytes: number, onTrip: () => void): void;
  /** Ends a freeze (and any `hold`): held and frozen requests are dropped, new ones are forwarded again. */
  thaw(): void;
  stop(): Promise<void>;
}

/** A deterministic PRNG so fault patterns repeat from run to run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Decides `probability` rules. @default seededRandom(42) */
  random?: () => number;
  /**
   * Forward the client's `Host` header as it is (the proxy's address) instead of the target's:
   * for servers that build URLs from it (the local Hub's LFS upload links, the GCS emulator's
   * resumable session URIs), so follow-up requests come back here; and for signed requests
   * (SigV4 signs the host).
   * @default false
   */
  preserveHost?: boolean;
  /**
   * Keep the client's connection open between requests, as S3 and most servers do, whatever the
   * target says: its `Connection: close` (moto's) is not passed on.
   * @default false
   */
  keepAlive?: boolean;
}

export async function startFaultProxy(targetUrl: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  const random = options.random ?? seededRandom(42);
  const rules: Array<FaultRule & { used: number }> = [];
  const requests: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();
  let bytesForwarded = 0;
  let open = 0;
  let frozen = false;
  let tripwire: { bytes: number; onTrip: () => void } | undefined;
  /** Requests held by `hold` or by a freeze, and requests cut by a freeze mid-body: dropped on thaw. */
  const held = new Set<IncomingMessage>();
  const hold = (req: IncomingMessage) => {
    held.add(req);
    req.resume(); // read and discard: nothing goes upstream
    // Held until its connection closes: the request's own 'close' comes as soon as its whole
    // body has been read, and a held request whose body has all arrived must still be dropped on thaw.
    req.socket.on('close', () => held.delete(req));
  };

  const pickRule = (method: string, path: string, headers: IncomingMessage['headers']) => {
    for (const rule of rules) {
      if (rule.used >= (rule.times ?? Infinity)) continue;
      if (rule.match && !rule.match({ method, path, headers })) continue;
      if (rule.probability !== undefined && random() >= rule.probability) continue;
      rule.used++;
      return rule;
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, entry: ProxyLogEntry, dropResponse: boolean, onResponse?: () => void) => {
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: options.preserveHost ? req.headers.host : target.host },
      },
      (up) => {
        if (dropResponse) {
          entry.status = up.statusCode; // what the server answered, though the client never sees it
          up.resume();
          up.on('end', () => {
            onResponse?.();
            req.socket.destroy();
          });
          return;
        }
        entry.status = up.statusCode;
        const { connection: _connection, ...kept } = up.headers;
        res.writeHead(up.statusCode ?? 502, options.keepAlive ? kept : up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    // Cut by a freeze: none of its later bytes go upstream, even after a thaw (the server would
    // get a body with a hole in it); it is read and discarded, and dropped on thaw.
    let cut = false;
    const cutHere = () => {
      cut = true;
      held.add(req);
      req.on('close', () => {
        held.delete(req);
        upstream.destroy(); // what was forwarded before the cut has had its chance to arrive
      });
    };
    req.on('data', (chunk: Buffer) => {
      if (cut) return;
      if (frozen) return cutHere();
      let part = chunk;
      if (tripwire && bytesForwarded + chunk.length >= tripwire.bytes) part = chunk.subarray(0, tripwire.bytes - bytesForwarded);
      bytesForwarded += part.length;
      entry.bytes += part.length;
      if (part.length > 0 && !upstream.write(part)) {
        req.pause();
        upstream.once('drain', () => req.resume());
      }
      if (tripwire && bytesForwarded >= tripwire.bytes) {
        const { onTrip } = tripwire;
        tripwire = undefined;
        frozen = true;
        if (!req.complete) cutHere();
        onTrip();
      }
    });
    req.on('end', () => {
      if (!frozen && !cut) upstream.end();
    });
    // A client that goes away mid-body (killed) cuts the upstream request too, as a direct
    // connection would: a single-threaded server (the GCS emulator) must not wait forever.
    req.on('close', () => {
      if (!req.complete) upstream.destroy();
    });
  };

  const server: Server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    open++;
    // Counted out when the answer is written whole ('finish', before the client can read it and
    // start another request), or when the exchange ends without one ('close'): on 'close' alone,
    // a loaded machine could run the client's next request before the proxy saw this one close,
    // and count one request more in flight than the client had.
    let counted = true;
    const countOut = () => {
      if (counted) open--;
      counted = false;
    };
    res.on('finish', countOut);
    res.on('close', countOut);
    const entry: ProxyLogEntry = { method, path, bytes: 0, inFlightAtStart: open };
    const contentRange = req.headers['content-range'];
    if (typeof contentRange === 'string') entry.contentRange = contentRange;
    if (typeof req.headers.expect === 'string') entry.expect = req.headers.expect;
    requests.push(entry);
    if (frozen) return hold(req);
    const rule = pickRule(method, path, req.headers);
    if (!rule) return forward(req, res, entry, false);
    entry.fault = rule.fault;
    switch (rule.fault) {
      case 'status':
        req.resume();
        req.on('end', () => {
          entry.status = rule.status ?? 503;
          res.writeHead(entry.status, { 'content-type': 'application/json', ...rule.headers });
          res.end(rule.body ?? JSON.stringify({ error_code: 'TEMPORARILY_UNAVAILABLE', message: 'injected fault' }));
        });
        return;
      case 'drop':
        req.socket.destroy();
        return;
      case 'drop-mid-body': {
        let seen = 0;
        const total = Number(req.headers['content-length'] ?? 0);
        req.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          if (seen >= total / 2) req.socket.destroy();
        });
        req.on('end', () => req.socket.destroy());
        return;
      }
      case 'stall': {
        const timer = setTimeout(() => req.socket.destroy(), rule.stallMs ?? 60_000);
        req.socket.on('close', () => clearTimeout(timer));
        return;
      }
      case 'drop-response':
        return forward(req, res, entry, true, rule.onResponse && (() => rule.onResponse!({ method, path })));
      case 'delay': {
        const timer = setTimeout(() => forward(req, res, entry, false), rule.delayMs ?? 100);
        req.socket.on('close', () => clearTimeout(timer));
        return;
      }
      case 'hold':
        hold(req);
        rule.onHold?.({ method, path });
        return;
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get bytesForwarded() {
      return bytesForwarded;
    },
    get openConnections() {
      return sockets.size;
    },
    addRule: (rule) => rules.push({ ...rule, used: 0 }),
    clearRules: () => rules.splice(0),
    reset: () => {
      rules.splice(0);
      requests.length = 0;
    },
    setTripwire: (bytes, onTrip) => {
      // A fraction could never be reached exactly: the proxy would swallow every byte, unfrozen.
      if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`setTripwire needs a whole number of bytes, got ${bytes}`);
      tripwire = { bytes, onTrip };
    },
    thaw: () => {
      frozen = false;
      tripwire = undefined;
      for (const req of held) req.socket.destroy();
      held.clear();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * For a test file: returns a function that starts a fault proxy in front of `targetUrl`; every
 * proxy it started is stopped after the file's tests.
 */
export function useFaultProxies(): (targetUrl: string, options?: FaultProxyOptions) => Promise<FaultProxy> {
  const proxies: FaultProxy[] = [];
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
  });
  return async (targetUrl, options) => {
    const p = await startFaultProxy(targetUrl, options);
    proxies.push(p);
    return p;
  };
}
