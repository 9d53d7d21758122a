/**
 * The fake Hub's state: repositories with branches and commits (each commit holds the full
 * file map, which is cheap at test sizes), per-repo LFS object storage, pending LFS uploads.
 * Everything is in memory; nothing here knows about HTTP.
 */
import { createHash, randomBytes } from 'node:crypto';

export type RepoType = 'model' | 'dataset' | 'space';

/** One file in a commit's tree. */
export interface FileEntry {
  path: string;
  /** Size of the file content (not of an LFS pointer). */
  size: number;
  /** Git blob oid (sha1): of the content for regular files, of the pointer file for LFS files. */
  blobOid: string;
  /** Present for LFS files. */
  lfs?: { oid: string; size: number; pointerSize: number };
  /** Content of a regular file (LFS content lives in the repo's LFS store). */
  content?: Buffer;
}

export interface Commit {
  oid: string;
  parents: string[];
  title: string;
  /** The commit description (what the Hub's commit list calls `message`). */
  message: string;
  author: string;
  date: Date;
  files: Map<string, FileEntry>;
}

export interface Repo {
  type: RepoType;
  namespace: string;
  name: string;
  /** `namespace/name`. */
  id: string;
  /** Mongo-like object id, as the real Hub returns in `_id` / `id` of create. */
  objectId: string;
  private: boolean;
  createdAt: Date;
  branches: Map<string, string>;
  commits: Map<string, Commit>;
  lfs: Map<string, Buffer>;
  pullRequests: number;
}

/** An LFS upload the batch endpoint handed out and that has not completed yet. */
export interface PendingUpload {
  ticket: string;
  repoKey: string;
  oid: string;
  size: number;
  multipart?: { chunkSize: number; partCount: number; parts: Map<number, { etag: string; data: Buffer }> };
}

/** The .gitattributes a new repo starts with on the real Hub (LFS rules only). */
export const DEFAULT_GITATTRIBUTES = [
  '*.7z',
  '*.arrow',
  '*.bin',
  '*.bz2',
  '*.ckpt',
  '*.ftz',
  '*.gz',
  '*.h5',
  '*.joblib',
  '*.lfs.*',
  '*.mlmodel',
  '*.model',
  '*.msgpack',
  '*.npy',
  '*.npz',
  '*.onnx',
  '*.ot',
  '*.parquet',
  '*.pb',
  '*.pickle',
  '*.pkl',
  '*.pt',
  '*.pth',
  '*.rar',
  '*.safetensors',
  'saved_model/**/*',
  '*.tar.*',
  '*.tar',
  '*.tflite',
  '*.tgz',
  '*.wasm',
  '*.xz',
  '*.zip',
  '*.zst',
  '*tfevents*',
]
  .map((pattern) => `${pattern} filter=lfs diff=lfs merge=lfs -text\n`)
  .join('');

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Git's blob object id: sha1 of `blob <len>\0<content>`. */
export function gitBlobOid(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export function lfsPointer(oid: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size}\n`);
}

export function repoKey(type: RepoType, id: string): string {
  return `${type}:${id}`;
}

/** Compiles one gitattributes pattern to a RegExp over repo paths. */
function compileAttributePattern(pattern: string): RegExp {
  const anchored = pattern.includes('/') && !pattern.startsWith('**/');
  const body = pattern.replace(/^\//, '');
  let re = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '*' && body[i + 1] === '*') {
      if (body[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(anchored ? `^${re}$` : `(?:^|/)${re}$`);
}

/** The paths a .gitattributes text sends to LFS (last matching line wins, as in git). */
export function lfsMatcher(gitattributes: string): (path: string) => boolean {
  const rules: Array<{ re: RegExp; lfs: boolean }> = [];
  for (const raw of gitattributes.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [pattern, ...attrs] = line.split(/\s+/);
    if (!pattern) continue;
    const filter = attrs.find((a) => a.startsWith('filter=') || a === '-filter' || a === '!filter');
    if (!filter) continue;
    rules.push({ re: compileAttributePattern(pattern), lfs: filter === 'filter=lfs' });
  }
  return (path) => {
    let result = false;
    for (const rule of rules) if (rule.re.test(path)) result = rule.lfs;
    return result;
  };
}

let commitCounter = 0;

/** All repositories of one fake Hub. */
export class HubStore {
  readonly repos = new Map<string, Repo>();
  readonly pending = new Map<string, PendingUpload>();

  get(type: RepoType, id: string): Repo | undefined {
    return this.repos.get(repoKey(type, id));
  }

  create(type: RepoType, namespace: string, name: string, options: { private: boolean; author: string }): Repo {
    const repo: Repo = {
      type,
      namespace,
      name,
      id: `${namespace}/${name}`,
      objectId: randomBytes(12).toString('hex'),
      private: options.private,
      createdAt: new Date(),
      branches: new Map(),
      commits: new Map(),
      lfs: new Map(),
      pullRequests: 0,
    };
    this.repos.set(repoKey(type, repo.id), repo);
    // The real Hub creates every repo with one commit holding a default .gitattributes.
    const attributes = Buffer.from(DEFAULT_GITATTRIBUTES);
    const files = new Map<string, FileEntry>([
      ['.gitattributes', { path: '.gitattributes', size: attributes.length, blobOid: gitBlobOid(attributes), content: attributes }],
    ]);
    const initial = this.addCommit(repo, { parents: [], title: 'initial commit', message: '', author: options.author, files });
    repo.branches.set('main', initial.oid);
    return repo;
  }

  delete(type: RepoType, id: string): boolean {
    return this.repos.delete(repoKey(type, id));
  }

  addCommit(repo: Repo, init: Omit<Commit, 'oid' | 'date'>): Commit {
    const digest = createHash('sha1');
    digest.update(`${repo.id}\n${init.parents.join(',')}\n${init.title}\n${init.message}\n${++commitCounter}\n${Date.now()}\n`);
    for (const [path, entry] of [...init.files].sort(([a], [b]) => (a < b ? -1 : 1))) digest.update(`${path}\0${entry.blobOid}\n`);
    const commit: Commit = { ...init, oid: digest.digest('hex'), date: new Date() };
    repo.commits.set(commit.oid, commit);
    return commit;
  }

  /** A branch name, `refs/pr/N`, a full commit oid or an unambiguous prefix of 7+ hex digits. */
  resolveRevision(repo: Repo, revision: string): Commit | undefined {
    const rev = revision === 'HEAD' ? 'main' : revision;
    const branchHead = repo.branches.get(rev);
    if (branchHead) return repo.commits.get(branchHead);
    if (/^[0-9a-f]{7,40}$/i.test(rev)) {
      const matches = [...repo.commits.keys()].filter((oid) => oid.startsWith(rev.toLowerCase()));
      if (matches.length === 1) return repo.commits.get(matches[0]!);
    }
    return undefined;
  }

  /** Commits reachable from `head` through first parents, newest first. */
  history(repo: Repo, head: string): Commit[] {
    const out: Commit[] = [];
    let current = repo.commits.get(head);
    while (current) {
      out.push(current);
      const parent = current.parents[0];
      current = parent ? repo.commits.get(parent) : undefined;
    }
    return out;
  }

  /** The newest commit (from `head`) that changed `path` or anything under it. */
  lastCommitTouching(repo: Repo, head: string, path: string): Commit | undefined {
    const history = this.history(repo, head);
    const fingerprint = (commit: Commit) =>
      [...commit.files.values()]
        .filter((f) => f.path === path || f.path.startsWith(`${path}/`))
        .map((f) => `${f.path}:${f.blobOid}`)
        .sort()
        .join('|');
    for (let i = 0; i < history.length; i++) {
      const parent = history[i + 1];
      if (!parent || fingerprint(history[i]!) !== fingerprint(parent)) return history[i];
    }
    return undefined;
  }

  /** Bytes of a file as stored (LFS content from the LFS store). */
  contentOf(repo: Repo, entry: FileEntry): Buffer {
    if (entry.lfs) return repo.lfs.get(entry.lfs.oid) ?? Buffer.alloc(0);
    return entry.content ?? Buffer.alloc(0);
  }

  newTicket(): string {
    return randomBytes(16).toString('hex');
  }
}
