/**
 * Wire-level helpers of the fake Hub: replies, Hub-style errors, routing of Hub URLs.
 */

/** What a handler answers; the dispatcher decides whether it is sent or dropped. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** A Buffer or string is sent as is; anything else as JSON. */
  body?: unknown;
}

/** The `X-Error-Code` values the official clients map to typed errors. */
export type HubErrorCode = 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound' | 'GatedRepo';

/** Thrown by handlers to answer with a Hub-style error. */
export class HubReply extends Error {
  constructor(readonly reply: Reply) {
    super(`fake hub reply ${reply.status}`);
  }
}

/**
 * A Hub-style error: JSON `{"error": message}`, `X-Error-Message` and, when one applies,
 * `X-Error-Code` (what `huggingface_hub.utils.hf_raise_for_status` and `@huggingface/hub`
 * read).
 */
export function hubError(status: number, message: string, code?: HubErrorCode, headers: Record<string, string> = {}): HubReply {
  return new HubReply({
    status,
    headers: {
      'x-error-message': headerSafe(message),
      ...(code ? { 'x-error-code': code } : {}),
      ...headers,
    },
    body: { error: message },
  });
}

function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, ' ').slice(0, 1000);
}

/** Names of the routes, for the request log and fault rules. */
export type FakeHubRoute =
  | 'whoami'
  | 'create-repo'
  | 'delete-repo'
  | 'validate-yaml'
  | 'repo-info'
  | 'preupload'
  | 'commit'
  | 'commits'
  | 'tree'
  | 'paths-info'
  | 'lfs-batch'
  | 'lfs-verify'
  | 'lfs-upload'
  | 'lfs-part'
  | 'lfs-complete'
  | 'resolve'
  | 'raw'
  | 'unknown';

export type RepoTypePlural = 'models' | 'datasets' | 'spaces';

/** A parsed request target. */
export interface RouteMatch {
  route: FakeHubRoute;
  repoType?: 'model' | 'dataset' | 'space';
  repoId?: string;
  revision?: string;
  /** File or folder path inside the repo. */
  path?: string;
  ticket?: string;
  partNumber?: number;
}

const PLURAL_TO_TYPE: Record<string, 'model' | 'dataset' | 'space'> = { models: 'model', datasets: 'dataset', spaces: 'space' };

/** URL prefix of a repo type in git/LFS/resolve URLs: none for models. */
export function urlPrefix(type: 'model' | 'dataset' | 'space'): string {
  return type === 'model' ? '' : `${type}s/`;
}

/**
 * Splits a revision off the front of a path: one (URL-decoded) segment, or the three
 * segments of an unencoded `refs/pr/N` / `refs/convert/x`.
 */
function takeRevision(segments: string[]): { revision: string; rest: string[] } {
  if (segments[0] === 'refs' && (segments[1] === 'pr' || segments[1] === 'convert') && segments[2] !== undefined) {
    return { revision: segments.slice(0, 3).join('/'), rest: segments.slice(3) };
  }
  return { revision: segments[0] ?? 'main', rest: segments.slice(1) };
}

/** Maps a method and a percent-encoded pathname to a route. */
export function matchRoute(method: string, pathname: string): RouteMatch {
  const segments = pathname
    .split('/')
    .slice(1)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  if (segments.at(-1) === '' && segments.length > 1) segments.pop();
  const [first, second] = segments;

  if (first === 'api') {
    if (second === 'whoami-v2' && method === 'GET') return { route: 'whoami' };
    if (second === 'repos' && segments[2] === 'create' && method === 'POST') return { route: 'create-repo' };
    if (second === 'repos' && segments[2] === 'delete' && method === 'DELETE') return { route: 'delete-repo' };
    if (second === 'validate-yaml' && method === 'POST') return { route: 'validate-yaml' };
    const repoType = second ? PLURAL_TO_TYPE[second] : undefined;
    if (repoType && segments.length >= 4) {
      const repoId = `${segments[2]}/${segments[3]}`;
      const [action, ...rest] = segments.slice(4);
      const base = { repoType, repoId };
      if (action === undefined && method === 'GET') return { route: 'repo-info', ...base, revision: 'main' };
      if (action === 'revision' && method === 'GET') return { route: 'repo-info', ...base, revision: rest.join('/') || 'main' };
      if (action === 'preupload' && method === 'POST') return { route: 'preupload', ...base, revision: rest.join('/') || 'main' };
      if (action === 'commit' && method === 'POST') return { route: 'commit', ...base, revision: rest.join('/') || 'main' };
      if (action === 'commits' && method === 'GET') return { route: 'commits', ...base, revision: rest.join('/') || 'main' };
      if (action === 'paths-info' && method === 'POST') return { route: 'paths-info', ...base, revision: rest.join('/') || 'main' };
      if (action === 'tree' && method === 'GET') {
        const { revision, rest: pathSegments } = takeRevision(rest);
        return { route: 'tree', ...base, revision, path: pathSegments.join('/') };
      }
    }
    return { route: 'unknown' };
  }

  if (first === '_fake-hub' && second === 'lfs' && segments[2]) {
    const ticket = segments[2];
    if (method === 'PUT' && segments.length === 3) return { route: 'lfs-upload', ticket };
    if (method === 'PUT' && segments[3] === 'part' && segments[4]) return { route: 'lfs-part', ticket, partNumber: Number(segments[4]) };
    if (method === 'POST' && segments[3] === 'complete') return { route: 'lfs-complete', ticket };
    return { route: 'unknown' };
  }

  // git/LFS and file URLs: [datasets/|spaces/]ns/name...
  let repoType: 'model' | 'dataset' | 'space' = 'model';
  let rest = segments;
  if ((first === 'datasets' || first === 'spaces') && segments.length >= 4) {
    repoType = PLURAL_TO_TYPE[first]!;
    rest = segments.slice(1);
  }
  const [ns, nameOrGit, action, ...tail] = rest;
  if (ns && nameOrGit?.endsWith('.git') && action === 'info' && tail[0] === 'lfs' && tail[1] === 'objects' && method === 'POST') {
    const repoId = `${ns}/${nameOrGit.slice(0, -4)}`;
    if (tail[2] === 'batch') return { route: 'lfs-batch', repoType, repoId };
    if (tail[2] === 'verify') return { route: 'lfs-verify', repoType, repoId };
  }
  if (ns && nameOrGit && (action === 'resolve' || action === 'raw') && (method === 'GET' || method === 'HEAD')) {
    const { revision, rest: pathSegments } = takeRevision(tail);
    return { route: action, repoType, repoId: `${ns}/${nameOrGit}`, revision, path: pathSegments.join('/') };
  }
  return { route: 'unknown' };
}
