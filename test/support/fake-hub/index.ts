/**
 * A local, in-memory Hugging Face Hub for tests: `startFakeHub()` listens on 127.0.0.1 (port 0)
 * and speaks what the official clients use for plain-LFS uploads and downloads — whoami,
 * create/delete repo, repo info, preupload, the LFS batch API (basic and multipart transfers,
 * verify), NDJSON commits with `parentCommit`, commit and tree listings (paged with `Link`),
 * resolve/raw with ranges — with Hub-style errors (`X-Error-Code`, `X-Error-Message`,
 * `{"error"}`) and bearer-token auth.
 *
 * Checked against `@huggingface/hub` 2.17 (`useXet: false`) and `huggingface_hub` 1.33
 * (`HF_HUB_DISABLE_XET=1`) in test/hub/fake-hub.test.ts. It never offers Xet.
 *
 * Test hooks: {@link FakeHub.requests} (every request, in order), {@link FakeHub.unanswered}
 * (the requests that got no answer: still waiting, or their connection closed first) and fault rules ({@link FakeHub.addFault},
 * {@link FakeHub.failNext}, {@link FakeHub.dropResponseOfNext}).
 *
 * @example
 * ```ts
 * const hub = await startFakeHub();
 * await uploadFiles({ repo: 'tester/x', files, hubUrl: hub.url, accessToken: hub.token, useXet: false });
 * await hub.stop();
 * ```
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FakeHubHandlers, type FakeHubLimits, type FakeHubToken } from './handlers.js';
import { HubReply, hubError, matchRoute, type FakeHubRoute, type Reply } from './protocol.js';
import { HubStore, type Commit, type RepoType } from './store.js';

export type { FakeHubToken, FakeHubLimits } from './handlers.js';
export type { FakeHubRoute } from './protocol.js';
export type { Commit, FileEntry, Repo, RepoType } from './store.js';
export { DEFAULT_GITATTRIBUTES, gitBlobOid, sha256Hex } from './store.js';

/** The default write token (user `tester`, org `test-org`). */
export const FAKE_HUB_TOKEN = 'hf_fakehubWriteToken0123456789';
/** A read-only token (user `reader`). */
export const FAKE_HUB_READ_TOKEN = 'hf_fakehubReadToken0123456789';

export interface FakeHubOptions {
  /** Accepted tokens. @default a write token for `tester` (org `test-org`) and a read token for `reader` */
  tokens?: FakeHubToken[];
  /** Size limits; shrink them to exercise LFS and multipart with KB-sized files. */
  limits?: Partial<FakeHubLimits>;
}

/** One request as the fake Hub saw it. */
export interface LoggedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  route: FakeHubRoute;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** `performance.now()` when the request had arrived whole (for waits between requests). */
  at: number;
  /** `Date.now()` at the same moment: comparable with times taken in another process (a child that made the request). */
  receivedAt: number;
  /** Status answered; `undefined` when the answer was dropped. */
  status?: number;
  /** The fault rule that applied, if any. */
  fault?: FaultAction;
}

export type FaultAction = 'status' | 'drop' | 'drop-response' | 'hold';

/** A request whose headers arrived and that got no answer: it still waits, or its connection closed first. */
export interface UnansweredRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  /** `Date.now()` when its headers arrived. */
  since: number;
  /** Whether its body arrived whole (a request still sending its body is not handled yet). */
  bodyComplete: boolean;
  /** `Date.now()` when its connection closed without an answer; `undefined` while it waits. */
  closedAt?: number;
}

/** A fault to inject into matching requests. */
export interface FaultRule {
  /** Route(s) it applies to. @default every route */
  route?: FakeHubRoute | FakeHubRoute[];
  /** HTTP method it applies to. @default any */
  method?: string;
  /** Extra filter on the path + query. */
  path?: RegExp;
  /** How many matching requests it affects before it expires. @default 1 */
  times?: number;
  /**
   * - `status`: answer `status` (Hub-style error) without handling the request;
   * - `drop`: close the connection without handling the request;
   * - `drop-response`: handle the request (it takes effect) and close the connection instead of answering;
   * - `hold`: wait for `until` to settle, then handle normally.
   */
  action: FaultAction;
  /** For `status`. @default 503 */
  status?: number;
  /** For `status`: the error message. */
  message?: string;
  /** For `status`: extra headers (e.g. `Retry-After`). */
  headers?: Record<string, string>;
  /** For `hold`. */
  until?: Promise<unknown>;
}

/** A fault rule once added. */
export interface FaultHandle {
  /** How many more requests it will affect. */
  readonly remaining: number;
  /** How many requests it affected so far. */
  readonly hits: number;
  /** Settles when the first request it affects arrives: the event to wait for, with no deadline. */
  readonly hit: Promise<void>;
  /**
   * Settles when the first request it affected is done with: answered, or its connection closed
   * (for `hold`, after `until`; what the request does to the repo has taken effect by then).
   */
  readonly done: Promise<void>;
  cancel(): void;
}

export interface FakeHub {
  /** Base URL, e.g. `http://127.0.0.1:40123`: pass as `hubUrl` / `HF_ENDPOINT`. */
  readonly url: string;
  /** The default write token. */
  readonly token: string;
  /** The default read-only token. */
  readonly readToken: string;
  /** The in-memory state, for assertions. */
  readonly store: HubStore;
  /** Every request, in arrival order. */
  readonly requests: LoggedRequest[];
  /**
   * The requests that got no answer, in arrival order: those waiting now (a fault's `hold`, a
   * body still on its way) and those whose connection closed first (a `drop`, a client that gave
   * up or exited). What a client that hangs was waiting for, when it waited for this Hub.
   * Emptied by {@link clearLog} with {@link requests}.
   */
  unanswered(): UnansweredRequest[];
  /** Empties {@link requests} and {@link unanswered}. */
  clearLog(): void;
  addFault(rule: FaultRule): FaultHandle;
  /** Answers the next `times` requests to `route` with `status` (default 503). */
  failNext(route: FakeHubRoute, times?: number, status?: number, headers?: Record<string, string>): FaultHandle;
  /** Lets the next request to `route` take effect, then closes the connection instead of answering. */
  dropResponseOfNext(route: FakeHubRoute): FaultHandle;
  /** Creates a repo directly (no HTTP). */
  createRepo(repoId: string, options?: { type?: RepoType; private?: boolean }): void;
  /** Head commit oid of a branch, `undefined` when the repo or branch does not exist. */
  head(repoId: string, options?: { type?: RepoType; branch?: string }): string | undefined;
  /** Commits of a branch, newest first (the repo's initial commit included). */
  commits(repoId: string, options?: { type?: RepoType; branch?: string }): Commit[];
  /** Bytes of a file at a revision (LFS content resolved), `undefined` when absent. */
  fileBytes(repoId: string, path: string, options?: { type?: RepoType; revision?: string }): Buffer | undefined;
  /** Paths of the files at a revision, sorted. */
  files(repoId: string, options?: { type?: RepoType; revision?: string }): string[];
  stop(): Promise<void>;
}

const DEFAULT_LIMITS: FakeHubLimits = {
  regularMaxBytes: 10 * 1024 * 1024,
  binaryRegularMaxBytes: 1024 * 1024,
  multipartThresholdBytes: 20 * 1024 * 1024,
  multipartChunkBytes: 10 * 1024 * 1024,
  treePageSize: 1000,
};

interface ActiveRule {
  rule: FaultRule;
  remaining: number;
  hits: number;
  /** Resolve {@link FaultHandle.hit} and {@link FaultHandle.done}. */
  onHit: () => void;
  onDone: () => void;
}

/** Starts a fake Hub on 127.0.0.1 and a free port. */
export async function startFakeHub(options: FakeHubOptions = {}): Promise<FakeHub> {
  const store = new HubStore();
  const tokens = options.tokens ?? [
    { token: FAKE_HUB_TOKEN, user: 'tester', orgs: ['test-org'], role: 'write' },
    { token: FAKE_HUB_READ_TOKEN, user: 'reader', role: 'read' },
  ];
  const handlers = new FakeHubHandlers(store, tokens, { ...DEFAULT_LIMITS, ...options.limits });
  const requests: LoggedRequest[] = [];
  const rules: ActiveRule[] = [];

  const takeFault = (method: string, route: FakeHubRoute, url: string): ActiveRule | undefined => {
    const active = rules.find(({ rule, remaining }) => {
      if (remaining <= 0) return false;
      const routes = rule.route === undefined ? undefined : Array.isArray(rule.route) ? rule.route : [rule.route];
      if (routes && !routes.includes(route)) return false;
      if (rule.method && rule.method.toUpperCase() !== method) return false;
      return !rule.path || rule.path.test(url);
    });
    if (active) {
      active.remaining--;
      active.hits++;
      active.onHit();
    }
    return active;
  };

  const unanswered = new Set<UnansweredRequest>();
  const server = createServer((req, res) => {
    const pending: UnansweredRequest = { method: (req.method ?? 'GET').toUpperCase(), url: req.url ?? '/', since: Date.now(), bodyComplete: false };
    unanswered.add(pending);
    // 'close' comes once the answer is sent whole, or when the connection goes first.
    res.on('close', () => {
      if (res.writableFinished) unanswered.delete(pending);
      else pending.closedAt = Date.now();
    });
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      pending.bodyComplete = true;
      void serve(req, res, Buffer.concat(chunks));
    });
  });

  const serve = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const origin = `http://${req.headers.host ?? `127.0.0.1:${port}`}`;
    const url = new URL(req.url ?? '/', origin);
    const match = matchRoute(method, url.pathname);
    const entry: LoggedRequest = { method, url: req.url ?? '/', route: match.route, headers: req.headers, body, at: performance.now(), receivedAt: Date.now() };
    requests.push(entry);
    const requestId = `Root=1-${randomBytes(4).toString('hex')}-${randomBytes(12).toString('hex')}`;

    const fault = takeFault(method, match.route, entry.url);
    if (fault) entry.fault = fault.rule.action;
    if (fault?.rule.action === 'drop') {
      res.socket?.destroy();
      fault.onDone();
      return;
    }
    if (fault?.rule.action === 'hold') await Promise.resolve(fault.rule.until).catch(() => undefined);

    let reply: Reply;
    if (fault?.rule.action === 'status') {
      const status = fault.rule.status ?? 503;
      reply = hubError(status, fault.rule.message ?? `Injected failure (${status})`, undefined, fault.rule.headers).reply;
    } else {
      try {
        reply = handlers.handle({ method, match, url, headers: req.headers, body, origin });
      } catch (error) {
        if (error instanceof HubReply) reply = error.reply;
        else reply = hubError(500, `Internal error in the fake Hub: ${(error as Error).stack ?? String(error)}`).reply;
      }
    }
    if (fault?.rule.action === 'drop-response') {
      // The request took effect; the client never hears about it.
      res.socket?.destroy();
      fault.onDone();
      return;
    }
    entry.status = reply.status;
    send(res, method, reply, requestId);
    fault?.onDone();
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  const handleOf = (active: ActiveRule, hit: Promise<void>, done: Promise<void>): FaultHandle => ({
    get remaining() {
      return active.remaining;
    },
    get hits() {
      return active.hits;
    },
    hit,
    done,
    cancel() {
      active.remaining = 0;
    },
  });

  const addFault = (rule: FaultRule): FaultHandle => {
    let onHit!: () => void;
    let onDone!: () => void;
    const hit = new Promise<void>((resolve) => (onHit = resolve));
    const done = new Promise<void>((resolve) => (onDone = resolve));
    const active: ActiveRule = { rule, remaining: rule.times ?? 1, hits: 0, onHit, onDone };
    rules.push(active);
    return handleOf(active, hit, done);
  };

  const repoOf = (repoId: string, type: RepoType = 'model') => store.get(type, repoId);

  return {
    url,
    token: FAKE_HUB_TOKEN,
    readToken: FAKE_HUB_READ_TOKEN,
    store,
    requests,
    unanswered: () => [...unanswered].map((r) => ({ ...r })),
    clearLog: () => {
      requests.length = 0;
      unanswered.clear();
    },
    addFault,
    failNext: (route, times = 1, status = 503, headers) => addFault({ route, times, action: 'status', status, headers }),
    dropResponseOfNext: (route) => addFault({ route, action: 'drop-response' }),
    createRepo: (repoId, opts = {}) => {
      const [namespace, name] = repoId.split('/');
      if (!namespace || !name) throw new Error(`repo id must be "namespace/name", got ${repoId}`);
      store.create(opts.type ?? 'model', namespace, name, { private: opts.private ?? false, author: namespace });
    },
    head: (repoId, opts = {}) => repoOf(repoId, opts.type)?.branches.get(opts.branch ?? 'main'),
    commits: (repoId, opts = {}) => {
      const repo = repoOf(repoId, opts.type);
      const head = repo?.branches.get(opts.branch ?? 'main');
      return repo && head ? store.history(repo, head) : [];
    },
    fileBytes: (repoId, path, opts = {}) => {
      const repo = repoOf(repoId, opts.type);
      const commit = repo && store.resolveRevision(repo, opts.revision ?? 'main');
      const entry = commit?.files.get(path);
      return repo && entry ? store.contentOf(repo, entry) : undefined;
    },
    files: (repoId, opts = {}) => {
      const repo = repoOf(repoId, opts.type);
      const commit = repo && store.resolveRevision(repo, opts.revision ?? 'main');
      return commit ? [...commit.files.keys()].sort() : [];
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const active of rules) active.remaining = 0;
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, method: string, reply: Reply, requestId: string): void {
  let body: Buffer;
  const headers: Record<string, string> = { 'x-request-id': requestId, ...reply.headers };
  if (reply.body === undefined) body = Buffer.alloc(0);
  else if (Buffer.isBuffer(reply.body)) body = reply.body;
  else if (typeof reply.body === 'string') body = Buffer.from(reply.body);
  else {
    body = Buffer.from(JSON.stringify(reply.body));
    headers['content-type'] ??= 'application/json; charset=utf-8';
  }
  headers['content-length'] = String(body.length);
  res.writeHead(reply.status, headers);
  res.end(method === 'HEAD' ? undefined : body);
}
