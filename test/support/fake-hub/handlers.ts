/**
 * The fake Hub's endpoints. Each handler takes the parsed request and returns a {@link Reply}
 * (or throws a {@link HubReply}); it never touches the socket, so the dispatcher can apply a
 * request and then drop its answer.
 *
 * Shapes follow what `@huggingface/hub` 2.17 and `huggingface_hub` 1.33 send and read (see
 * /work/shared/research/hf-hub.md §1, §2, §6 and the clients' sources).
 */
import { createHash } from 'node:crypto';
import { hubError, urlPrefix, type Reply, type RouteMatch } from './protocol.js';
import {
  gitBlobOid,
  lfsMatcher,
  lfsPointer,
  sha256Hex,
  repoKey,
  type Commit,
  type FileEntry,
  type HubStore,
  type Repo,
  type RepoType,
} from './store.js';

/** A token the fake Hub accepts. */
export interface FakeHubToken {
  /** The bearer token; `@huggingface/hub` insists it starts with `hf_`. */
  token: string;
  /** The user it belongs to. */
  user: string;
  /** Organisations the user can write to. */
  orgs?: string[];
  /** @default 'write' */
  role?: 'read' | 'write';
}

/** Limits that decide regular vs LFS and single vs multipart uploads. */
export interface FakeHubLimits {
  /** Largest regular (inline) file a commit accepts, like the Hub's 10 MiB. */
  regularMaxBytes: number;
  /** Largest binary regular file a commit accepts, like the Hub's 1 MiB rule for binaries. */
  binaryRegularMaxBytes: number;
  /** LFS objects larger than this get a multipart upload (`chunk_size` + part URLs). */
  multipartThresholdBytes: number;
  /** Part size of multipart uploads. */
  multipartChunkBytes: number;
  /** Entries per page of a tree listing (more pages are linked with `Link: rel="next"`). */
  treePageSize: number;
}

export interface RequestContext {
  method: string;
  match: RouteMatch;
  url: URL;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Origin the client used (from the Host header), for URLs in answers. */
  origin: string;
}

type Access = 'read' | 'write';

export class FakeHubHandlers {
  constructor(
    private readonly store: HubStore,
    private readonly tokens: FakeHubToken[],
    private readonly limits: FakeHubLimits,
  ) {}

  handle(ctx: RequestContext): Reply {
    switch (ctx.match.route) {
      case 'whoami':
        return this.whoami(ctx);
      case 'create-repo':
        return this.createRepo(ctx);
      case 'delete-repo':
        return this.deleteRepo(ctx);
      case 'validate-yaml':
        return { status: 200, body: { errors: [], warnings: [] } };
      case 'repo-info':
        return this.repoInfo(ctx);
      case 'preupload':
        return this.preupload(ctx);
      case 'lfs-batch':
        return this.lfsBatch(ctx);
      case 'lfs-verify':
        return this.lfsVerify(ctx);
      case 'lfs-upload':
        return this.lfsUpload(ctx);
      case 'lfs-part':
        return this.lfsPart(ctx);
      case 'lfs-complete':
        return this.lfsComplete(ctx);
      case 'commit':
        return this.commit(ctx);
      case 'commits':
        return this.commits(ctx);
      case 'tree':
        return this.tree(ctx);
      case 'paths-info':
        return this.pathsInfo(ctx);
      case 'resolve':
      case 'raw':
        return this.resolve(ctx);
      default:
        throw hubError(404, `Sorry, we can't find the page you are looking for (${ctx.method} ${ctx.url.pathname}).`);
    }
  }

  // ───────────────────────────── auth ─────────────────────────────

  /** The caller's token, `undefined` when anonymous; 401 for a token the Hub does not know. */
  private caller(ctx: RequestContext): FakeHubToken | undefined {
    const header = ctx.headers.authorization;
    const value = Array.isArray(header) ? header[0] : header;
    if (!value) return undefined;
    const match = /^Bearer\s+(.+)$/i.exec(value.trim());
    const known = match ? this.tokens.find((t) => t.token === match[1]) : undefined;
    if (!known) throw hubError(401, 'Invalid credentials in Authorization header');
    return known;
  }

  private requireCaller(ctx: RequestContext): FakeHubToken {
    const caller = this.caller(ctx);
    if (!caller) throw hubError(401, 'Invalid credentials in Authorization header');
    return caller;
  }

  private canWrite(caller: FakeHubToken, namespace: string): boolean {
    return (caller.role ?? 'write') === 'write' && (caller.user === namespace || (caller.orgs ?? []).includes(namespace));
  }

  /**
   * The repo a request names, checked for access. Like the Hub, a repo the caller may not see
   * is indistinguishable from a missing one (401 anonymous, 404 authenticated).
   */
  private repoFor(ctx: RequestContext, access: Access): { repo: Repo; caller?: FakeHubToken } {
    const { repoType, repoId } = ctx.match;
    const caller = access === 'write' ? this.requireCaller(ctx) : this.caller(ctx);
    const repo = repoType && repoId ? this.store.get(repoType, repoId) : undefined;
    const visible = repo && (!repo.private || (caller && (caller.user === repo.namespace || (caller.orgs ?? []).includes(repo.namespace))));
    if (!repo || !visible) {
      const message = `Repository Not Found for url: ${ctx.origin}${ctx.url.pathname}.`;
      throw hubError(caller ? 404 : 401, message, 'RepoNotFound');
    }
    if (access === 'write' && !this.canWrite(caller!, repo.namespace)) {
      throw hubError(403, `You don't have write access to ${repo.type} ${repo.id}.`);
    }
    return { repo, caller };
  }

  private commitAt(repo: Repo, revision: string | undefined): Commit {
    const commit = this.store.resolveRevision(repo, revision ?? 'main');
    if (!commit) throw hubError(404, `Invalid rev id: ${revision}`, 'RevisionNotFound');
    return commit;
  }

  private repoUrl(ctx: RequestContext, repo: Repo): string {
    return `${ctx.origin}/${urlPrefix(repo.type)}${repo.id}`;
  }

  // ───────────────────────────── account and repos ─────────────────────────────

  private whoami(ctx: RequestContext): Reply {
    const caller = this.requireCaller(ctx);
    return {
      status: 200,
      body: {
        type: 'user',
        id: createHash('sha1').update(caller.user).digest('hex').slice(0, 24),
        name: caller.user,
        fullname: caller.user,
        email: `${caller.user}@example.com`,
        emailVerified: true,
        canPay: false,
        isPro: false,
        periodEnd: null,
        avatarUrl: `${ctx.origin}/avatars/${caller.user}.svg`,
        orgs: (caller.orgs ?? []).map((name) => ({ type: 'org', name, fullname: name, roleInOrg: 'admin' })),
        auth: {
          type: 'access_token',
          accessToken: { displayName: 'fake-hub', role: caller.role ?? 'write', createdAt: new Date(0).toISOString() },
        },
      },
    };
  }

  private createRepo(ctx: RequestContext): Reply {
    const caller = this.requireCaller(ctx);
    const body = parseJson(ctx.body) as { name?: string; organization?: string; type?: string; private?: boolean; visibility?: string };
    const type = (body.type ?? 'model') as RepoType;
    if (!['model', 'dataset', 'space'].includes(type)) throw hubError(400, `Invalid repo type: ${String(body.type)}`);
    const name = body.name ?? '';
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/.test(name) || name.includes('--') || name.includes('..') || name.endsWith('.git')) {
      throw hubError(400, `Invalid repo name "${name}": use letters, digits, '-', '_' and '.', at most 96 characters.`);
    }
    const namespace = body.organization ?? caller.user;
    if (!this.canWrite(caller, namespace)) {
      throw hubError(403, `You don't have the rights to create a ${type} under the namespace "${namespace}"`);
    }
    const id = `${namespace}/${name}`;
    const existing = this.store.get(type, id);
    if (existing) {
      // huggingface_hub's create_repo(exist_ok=True) reads `url` from the 409 body.
      return { status: 409, headers: { 'x-error-message': `You already created this ${type} repo` }, body: { error: `You already created this ${type} repo`, url: this.repoUrl(ctx, existing) } };
    }
    const isPrivate = body.visibility ? body.visibility !== 'public' : Boolean(body.private);
    const repo = this.store.create(type, namespace, name, { private: isPrivate, author: caller.user });
    return { status: 200, body: { url: this.repoUrl(ctx, repo), name: repo.id, id: repo.objectId } };
  }

  private deleteRepo(ctx: RequestContext): Reply {
    const caller = this.requireCaller(ctx);
    const body = parseJson(ctx.body) as { name?: string; organization?: string; type?: string };
    const type = (body.type ?? 'model') as RepoType;
    const namespace = body.organization ?? caller.user;
    const id = `${namespace}/${body.name ?? ''}`;
    if (!this.store.get(type, id)) throw hubError(404, `Repository Not Found: ${id}`, 'RepoNotFound');
    if (!this.canWrite(caller, namespace)) throw hubError(403, `You don't have the rights to delete ${id}`);
    this.store.delete(type, id);
    return { status: 200, body: {} };
  }

  private repoInfo(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'read');
    const commit = this.commitAt(repo, ctx.match.revision);
    const siblings = [...commit.files.keys()].sort().map((rfilename) => ({ rfilename }));
    return {
      status: 200,
      body: {
        _id: repo.objectId,
        id: repo.id,
        ...(repo.type === 'model' ? { modelId: repo.id } : {}),
        author: repo.namespace,
        sha: commit.oid,
        lastModified: commit.date.toISOString(),
        createdAt: repo.createdAt.toISOString(),
        private: repo.private,
        disabled: false,
        gated: false,
        downloads: 0,
        likes: 0,
        tags: [],
        siblings,
        usedStorage: [...commit.files.values()].reduce((sum, f) => sum + f.size, 0),
      },
    };
  }

  // ───────────────────────────── upload: preupload and LFS ─────────────────────────────

  private isLfsPath(repo: Repo, commit: Commit, path: string, gitAttributes?: string): boolean {
    const entry = commit.files.get('.gitattributes');
    const attributes = gitAttributes ?? (entry ? this.store.contentOf(repo, entry).toString('utf8') : '');
    return lfsMatcher(attributes)(path);
  }

  private preupload(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'write');
    const commit = this.commitAt(repo, ctx.match.revision);
    const body = parseJson(ctx.body) as { files?: Array<{ path?: string; size?: number; sample?: string }>; gitAttributes?: string };
    if (!Array.isArray(body.files)) throw hubError(400, 'Invalid request body: "files" must be an array.');
    const files = body.files.map((file) => {
      if (typeof file.path !== 'string' || typeof file.size !== 'number') throw hubError(400, 'Every file needs a "path" and a "size".');
      const sample = Buffer.from(file.sample ?? '', 'base64');
      const binary = sample.includes(0);
      const lfs =
        this.isLfsPath(repo, commit, file.path, body.gitAttributes) ||
        file.size > this.limits.regularMaxBytes ||
        (binary && file.size > this.limits.binaryRegularMaxBytes);
      const existing = commit.files.get(file.path);
      return {
        path: file.path,
        uploadMode: lfs ? 'lfs' : 'regular',
        shouldIgnore: false,
        // Python drops unchanged files by comparing this with its local oid (sha256 / git sha1).
        ...(existing ? { oid: existing.lfs ? existing.lfs.oid : existing.blobOid } : {}),
      };
    });
    return { status: 200, body: { files, commitOid: commit.oid } };
  }

  private lfsBatch(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'write');
    const body = parseJson(ctx.body) as {
      operation?: string;
      transfers?: string[];
      hash_algo?: string;
      objects?: Array<{ oid?: string; size?: number }>;
    };
    if (body.operation !== 'upload') throw hubError(400, `Unsupported LFS operation "${String(body.operation)}" (the fake Hub only uploads).`);
    if (body.hash_algo !== undefined && body.hash_algo !== 'sha256' && body.hash_algo !== 'sha_256') {
      throw hubError(409, `Unsupported hash algorithm "${body.hash_algo}".`);
    }
    if (body.transfers && !body.transfers.includes('basic')) throw hubError(422, 'The fake Hub only offers the "basic" (and multipart) transfer.');
    if (!Array.isArray(body.objects)) throw hubError(400, 'Invalid request body: "objects" must be an array.');
    const lfsBase = `${ctx.origin}/${urlPrefix(repo.type)}${repo.id}.git/info/lfs/objects`;
    const objects = body.objects.map((object) => {
      const oid = String(object.oid ?? '');
      const size = Number(object.size);
      if (!/^[0-9a-f]{64}$/.test(oid) || !Number.isInteger(size) || size < 0) {
        return { oid, size, error: { code: 422, message: 'Invalid object: oid must be a sha256 hex digest and size a non-negative integer.' } };
      }
      const stored = repo.lfs.get(oid);
      if (stored) {
        if (stored.length !== size) return { oid, size, error: { code: 422, message: `Object ${oid} already exists with size ${stored.length}.` } };
        return { oid, size, authenticated: true }; // no actions: already uploaded
      }
      const ticket = this.store.newTicket();
      const expiresAt = new Date(Date.now() + 3600_000).toISOString();
      const verify = { href: `${lfsBase}/verify`, expires_at: expiresAt };
      const uploadBase = `${ctx.origin}/_fake-hub/lfs/${ticket}`;
      if (size > this.limits.multipartThresholdBytes) {
        const chunkSize = this.limits.multipartChunkBytes;
        const partCount = Math.ceil(size / chunkSize);
        const header: Record<string, string> = { chunk_size: String(chunkSize) };
        for (let n = 1; n <= partCount; n++) header[String(n).padStart(5, '0')] = `${uploadBase}/part/${n}`;
        this.store.pending.set(ticket, { ticket, repoKey: repoKey(repo.type, repo.id), oid, size, multipart: { chunkSize, partCount, parts: new Map() } });
        return { oid, size, authenticated: true, actions: { upload: { href: `${uploadBase}/complete`, header, expires_at: expiresAt }, verify } };
      }
      this.store.pending.set(ticket, { ticket, repoKey: repoKey(repo.type, repo.id), oid, size });
      return { oid, size, authenticated: true, actions: { upload: { href: uploadBase, expires_at: expiresAt }, verify } };
    });
    return {
      status: 200,
      headers: { 'content-type': 'application/vnd.git-lfs+json' },
      body: { transfer: 'basic', objects, hash_algo: 'sha256' },
    };
  }

  private pendingUpload(ctx: RequestContext) {
    const pending = this.store.pending.get(ctx.match.ticket ?? '');
    if (!pending) throw s3Error(403, 'AccessDenied', 'Request has expired or the upload URL is unknown.');
    const repo = this.store.repos.get(pending.repoKey);
    if (!repo) throw s3Error(404, 'NoSuchBucket', 'The repository of this upload was deleted.');
    return { pending, repo };
  }

  private storeObject(repo: Repo, oid: string, size: number, data: Buffer): void {
    if (data.length !== size) throw s3Error(400, 'IncompleteBody', `Expected ${size} bytes, received ${data.length}.`);
    if (sha256Hex(data) !== oid) throw s3Error(400, 'BadDigest', `The sha256 of the uploaded content does not match the oid ${oid}.`);
    repo.lfs.set(oid, data);
  }

  private lfsUpload(ctx: RequestContext): Reply {
    const { pending, repo } = this.pendingUpload(ctx);
    if (pending.multipart) throw s3Error(400, 'InvalidRequest', 'This object must be uploaded in parts.');
    // A presigned PUT can be repeated (a retry after a lost answer): the object is just stored again.
    this.storeObject(repo, pending.oid, pending.size, ctx.body);
    return { status: 200, headers: { etag: `"${md5(ctx.body)}"` } };
  }

  private lfsPart(ctx: RequestContext): Reply {
    const { pending } = this.pendingUpload(ctx);
    const multipart = pending.multipart;
    const n = ctx.match.partNumber ?? NaN;
    if (!multipart || !Number.isInteger(n) || n < 1 || n > multipart.partCount) throw s3Error(400, 'InvalidPart', `No part ${n} in this upload.`);
    const expected = n < multipart.partCount ? multipart.chunkSize : pending.size - multipart.chunkSize * (multipart.partCount - 1);
    if (ctx.body.length !== expected) throw s3Error(400, 'IncompleteBody', `Part ${n} must be ${expected} bytes, received ${ctx.body.length}.`);
    const etag = `"${md5(ctx.body)}"`;
    multipart.parts.set(n, { etag, data: ctx.body });
    return { status: 200, headers: { etag } };
  }

  private lfsComplete(ctx: RequestContext): Reply {
    const { pending, repo } = this.pendingUpload(ctx);
    const multipart = pending.multipart;
    if (!multipart) throw s3Error(400, 'InvalidRequest', 'This upload is not multipart.');
    const body = parseJson(ctx.body) as { oid?: string; parts?: Array<{ partNumber?: number; etag?: string }> };
    if (body.oid !== pending.oid) throw s3Error(400, 'InvalidRequest', `Completion names oid ${String(body.oid)}, the upload is for ${pending.oid}.`);
    const parts = body.parts ?? [];
    if (parts.length !== multipart.partCount) throw s3Error(400, 'InvalidPart', `Expected ${multipart.partCount} parts, got ${parts.length}.`);
    const chunks: Buffer[] = [];
    for (let n = 1; n <= multipart.partCount; n++) {
      const listed = parts.find((p) => p.partNumber === n);
      const uploaded = multipart.parts.get(n);
      if (!listed || !uploaded) throw s3Error(400, 'InvalidPart', `Part ${n} is missing.`);
      if (listed.etag !== uploaded.etag) throw s3Error(400, 'InvalidPart', `ETag of part ${n} does not match (${String(listed.etag)} vs ${uploaded.etag}).`);
      chunks.push(uploaded.data);
    }
    this.storeObject(repo, pending.oid, pending.size, Buffer.concat(chunks));
    return { status: 200, body: {} };
  }

  private lfsVerify(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'write');
    const body = parseJson(ctx.body) as { oid?: string; size?: number };
    const stored = repo.lfs.get(String(body.oid));
    if (!stored || stored.length !== body.size) throw hubError(404, `LFS object ${String(body.oid)} of size ${String(body.size)} was not uploaded.`);
    return { status: 200, body: {} };
  }

  // ───────────────────────────── commit ─────────────────────────────

  private commit(ctx: RequestContext): Reply {
    const { repo, caller } = this.repoFor(ctx, 'write');
    const revision = ctx.match.revision ?? 'main';
    const createPr = ['1', 'true', 'True'].includes(ctx.url.searchParams.get('create_pr') ?? '');
    const headOid = repo.branches.get(revision);
    if (!headOid) throw hubError(404, `Invalid rev id: ${revision}`, 'RevisionNotFound');

    const lines = ctx.body
      .toString('utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as { key?: string; value?: Record<string, unknown> };
        } catch {
          throw hubError(400, `Invalid NDJSON line in commit payload: ${line.slice(0, 80)}`);
        }
      });
    const [first, ...operations] = lines;
    if (first?.key !== 'header' || !first.value) throw hubError(400, 'The first line of a commit payload must be the header.');
    const header = first.value as { summary?: string; description?: string; parentCommit?: string };
    if (typeof header.summary !== 'string' || header.summary.trim() === '') throw hubError(400, 'The commit summary (title) must not be empty.');

    let baseOid = headOid;
    if (header.parentCommit !== undefined) {
      const parent = String(header.parentCommit).toLowerCase();
      if (createPr) {
        // When opening a PR, parentCommit chooses the commit the PR starts from.
        const base = /^[0-9a-f]{5,40}$/.test(parent) ? this.store.resolveRevision(repo, parent) : undefined;
        if (!base) throw hubError(412, `Parent commit ${parent} not found.`);
        baseOid = base.oid;
      } else if (!/^[0-9a-f]{5,40}$/.test(parent) || !headOid.startsWith(parent)) {
        // The real Hub answers 412 (not 409) when the branch head moved past parentCommit.
        throw hubError(412, `A commit has happened since. Please refresh and try again. (head of ${revision} is ${headOid}, parentCommit was ${parent})`);
      }
    }
    const base = repo.commits.get(baseOid)!;
    const files = new Map(base.files);
    const lfsPaths: string[] = [];
    const tooLarge: string[] = [];
    const binaries: string[] = [];

    for (const op of operations) {
      const value = op.value ?? {};
      const path = typeof value.path === 'string' ? value.path.replace(/^\/+/, '') : '';
      if (!path || path.split('/').some((s) => s === '..' || s === '.' || s === '')) throw hubError(400, `Invalid path in commit: "${String(value.path)}"`);
      switch (op.key) {
        case 'file': {
          const content = value.encoding === 'base64' ? Buffer.from(String(value.content ?? ''), 'base64') : Buffer.from(String(value.content ?? ''), 'utf8');
          if (content.length > this.limits.regularMaxBytes) tooLarge.push(path);
          else if (content.includes(0) && content.length > this.limits.binaryRegularMaxBytes) binaries.push(path);
          files.set(path, { path, size: content.length, blobOid: gitBlobOid(content), content });
          break;
        }
        case 'lfsFile': {
          const oid = String(value.oid ?? '');
          const stored = repo.lfs.get(oid);
          if (!stored) throw hubError(422, `LFS object ${oid} for ${path} was never uploaded; call the LFS batch API first.`);
          if (value.size !== undefined && Number(value.size) !== stored.length) {
            throw hubError(422, `LFS object ${oid} for ${path} has size ${stored.length}, the commit says ${String(value.size)}.`);
          }
          const pointer = lfsPointer(oid, stored.length);
          files.set(path, { path, size: stored.length, blobOid: gitBlobOid(pointer), lfs: { oid, size: stored.length, pointerSize: pointer.length } });
          lfsPaths.push(path);
          break;
        }
        case 'deletedFile': {
          if (!files.delete(path)) throw hubError(404, `File not found in repository: ${path}`, 'EntryNotFound');
          break;
        }
        case 'deletedFolder': {
          const prefix = path.endsWith('/') ? path : `${path}/`;
          const doomed = [...files.keys()].filter((p) => p.startsWith(prefix));
          if (doomed.length === 0) throw hubError(404, `Folder not found in repository: ${path}`, 'EntryNotFound');
          for (const p of doomed) files.delete(p);
          break;
        }
        default:
          throw hubError(400, `Unknown commit operation "${String(op.key)}".`);
      }
    }
    if (tooLarge.length > 0) {
      throw hubError(400, `Your push was rejected because it contains files larger than 10 MiB. Please use https://git-lfs.github.com/ to store large files. Offending files: ${tooLarge.join(', ')}`);
    }
    if (binaries.length > 0) {
      throw hubError(400, `Your push was rejected because it contains binary files. Please use LFS to store binary files. Offending files: ${binaries.join(', ')}`);
    }

    // Like the Hub, an LFS file at a path .gitattributes does not cover gets a rule of its own.
    const attributesEntry = files.get('.gitattributes');
    let attributes = attributesEntry ? this.store.contentOf(repo, attributesEntry).toString('utf8') : '';
    const covered = lfsMatcher(attributes);
    const missing = lfsPaths.filter((p) => !covered(p));
    if (missing.length > 0) {
      if (attributes && !attributes.endsWith('\n')) attributes += '\n';
      attributes += missing.map((p) => `${p.replace(/ /g, '[[:space:]]')} filter=lfs diff=lfs merge=lfs -text\n`).join('');
      const content = Buffer.from(attributes);
      files.set('.gitattributes', { path: '.gitattributes', size: content.length, blobOid: gitBlobOid(content), content });
    }

    const commit = this.store.addCommit(repo, {
      parents: [baseOid],
      title: header.summary,
      message: header.description ?? '',
      author: caller?.user ?? 'anonymous',
      files,
    });
    const repoUrl = this.repoUrl(ctx, repo);
    if (createPr) {
      const number = ++repo.pullRequests;
      repo.branches.set(`refs/pr/${number}`, commit.oid);
      return {
        status: 200,
        body: { success: true, commitOid: commit.oid, commitUrl: `${repoUrl}/commit/${commit.oid}`, hookOutput: '', pullRequestUrl: `${repoUrl}/discussions/${number}` },
      };
    }
    repo.branches.set(revision, commit.oid);
    return { status: 200, body: { success: true, commitOid: commit.oid, commitUrl: `${repoUrl}/commit/${commit.oid}`, hookOutput: '' } };
  }

  private commits(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'read');
    const head = this.commitAt(repo, ctx.match.revision);
    const history = this.store.history(repo, head.oid);
    const limit = clampInt(ctx.url.searchParams.get('limit'), 50, 1, 1000);
    const page = clampInt(ctx.url.searchParams.get('p'), 0, 0, Number.MAX_SAFE_INTEGER);
    const items = history.slice(page * limit, (page + 1) * limit).map((c) => ({
      id: c.oid,
      title: c.title,
      message: c.message,
      authors: [{ user: c.author, avatar: `${ctx.origin}/avatars/${c.author}.svg` }],
      date: c.date.toISOString(),
    }));
    const headers: Record<string, string> = { 'x-total-count': String(history.length) };
    if ((page + 1) * limit < history.length) {
      const next = new URL(ctx.url.pathname + ctx.url.search, ctx.origin);
      next.searchParams.set('p', String(page + 1));
      headers.link = `<${next.toString()}>; rel="next"`;
    }
    return { status: 200, headers, body: items };
  }

  // ───────────────────────────── listing and download ─────────────────────────────

  private entryJson(repo: Repo, head: Commit, entry: FileEntry, expand: boolean): Record<string, unknown> {
    const last = expand ? this.store.lastCommitTouching(repo, head.oid, entry.path) : undefined;
    return {
      type: 'file',
      oid: entry.blobOid,
      size: entry.size,
      path: entry.path,
      ...(entry.lfs ? { lfs: { ...entry.lfs } } : {}),
      ...(last ? { lastCommit: { id: last.oid, title: last.title, date: last.date.toISOString() } } : {}),
    };
  }

  private directoryJson(repo: Repo, head: Commit, path: string, expand: boolean): Record<string, unknown> {
    const inside = [...head.files.values()].filter((f) => f.path.startsWith(`${path}/`));
    const oid = createHash('sha1')
      .update(inside.map((f) => `${f.path}:${f.blobOid}`).sort().join('\n'))
      .digest('hex');
    const last = expand ? this.store.lastCommitTouching(repo, head.oid, path) : undefined;
    return {
      type: 'directory',
      oid,
      size: 0,
      path,
      ...(last ? { lastCommit: { id: last.oid, title: last.title, date: last.date.toISOString() } } : {}),
    };
  }

  private tree(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'read');
    const head = this.commitAt(repo, ctx.match.revision);
    const path = (ctx.match.path ?? '').replace(/^\/+|\/+$/g, '');
    const recursive = ['true', 'True', '1'].includes(ctx.url.searchParams.get('recursive') ?? '');
    const expand = ['true', 'True', '1'].includes(ctx.url.searchParams.get('expand') ?? '');
    const prefix = path ? `${path}/` : '';
    const under = [...head.files.values()].filter((f) => f.path.startsWith(prefix));
    if (path && under.length === 0) throw hubError(404, `Entry not found: ${path}`, 'EntryNotFound', { 'x-repo-commit': head.oid });

    const dirs = new Set<string>();
    const fileEntries: FileEntry[] = [];
    for (const file of under) {
      const relative = file.path.slice(prefix.length).split('/');
      if (!recursive && relative.length > 1) {
        dirs.add(prefix + relative[0]);
        continue;
      }
      if (recursive) for (let i = 1; i < relative.length; i++) dirs.add(prefix + relative.slice(0, i).join('/'));
      fileEntries.push(file);
    }
    const all = [
      ...[...dirs].map((d) => ({ path: d, dir: true as const })),
      ...fileEntries.map((f) => ({ path: f.path, dir: false as const, entry: f })),
    ].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

    const offset = Number(Buffer.from(ctx.url.searchParams.get('cursor') ?? '', 'base64url').toString('utf8') || '0') || 0;
    const page = all.slice(offset, offset + this.limits.treePageSize);
    const headers: Record<string, string> = {};
    if (offset + this.limits.treePageSize < all.length) {
      const next = new URL(ctx.url.pathname + ctx.url.search, ctx.origin);
      next.searchParams.set('cursor', Buffer.from(String(offset + this.limits.treePageSize)).toString('base64url'));
      headers.link = `<${next.toString()}>; rel="next"`;
    }
    const body = page.map((item) => (item.dir ? this.directoryJson(repo, head, item.path, expand) : this.entryJson(repo, head, item.entry, expand)));
    return { status: 200, headers, body };
  }

  private pathsInfo(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'read');
    const head = this.commitAt(repo, ctx.match.revision);
    const type = String(ctx.headers['content-type'] ?? '');
    let paths: string[] = [];
    let expand = false;
    if (type.includes('application/json')) {
      const body = parseJson(ctx.body) as { paths?: string[] | string; expand?: boolean | string };
      paths = Array.isArray(body.paths) ? body.paths : body.paths ? [body.paths] : [];
      expand = body.expand === true || body.expand === 'true' || body.expand === 'True';
    } else {
      const form = new URLSearchParams(ctx.body.toString('utf8'));
      paths = form.getAll('paths');
      expand = ['true', 'True', '1'].includes(form.get('expand') ?? '');
    }
    const out: Array<Record<string, unknown>> = [];
    for (const raw of paths) {
      const path = raw.replace(/^\/+|\/+$/g, '');
      const entry = head.files.get(path);
      if (entry) out.push(this.entryJson(repo, head, entry, expand));
      else if ([...head.files.keys()].some((p) => p.startsWith(`${path}/`))) out.push(this.directoryJson(repo, head, path, expand));
    }
    return { status: 200, body: out };
  }

  private resolve(ctx: RequestContext): Reply {
    const { repo } = this.repoFor(ctx, 'read');
    const head = this.commitAt(repo, ctx.match.revision);
    const path = ctx.match.path ?? '';
    const entry = head.files.get(path);
    if (!entry) throw hubError(404, 'Entry not found', 'EntryNotFound', { 'x-repo-commit': head.oid });
    const raw = ctx.match.route === 'raw';
    const content = entry.lfs && raw ? lfsPointer(entry.lfs.oid, entry.lfs.size) : this.store.contentOf(repo, entry);
    const filename = path.split('/').pop() ?? path;
    const headers: Record<string, string> = {
      'x-repo-commit': head.oid,
      'accept-ranges': 'bytes',
      // Never the xet-fileinfo type nor X-Xet-Hash: both clients would switch to Xet download.
      'content-type': entry.lfs && !raw ? 'application/octet-stream' : 'text/plain; charset=utf-8',
      'content-disposition': `inline; filename*=UTF-8''${encodeURIComponent(filename)}; filename="${filename.replace(/[^\x20-\x7e]|"/g, '_')}"`,
      etag: entry.lfs && !raw ? `"${entry.lfs.oid}"` : `"${entry.blobOid}"`,
    };
    if (entry.lfs && !raw) {
      headers['x-linked-etag'] = `"${entry.lfs.oid}"`;
      headers['x-linked-size'] = String(entry.lfs.size);
    }
    const range = parseRange(header(ctx, 'range'), content.length);
    if (range === 'unsatisfiable') {
      return { status: 416, headers: { ...headers, 'content-range': `bytes */${content.length}` }, body: Buffer.alloc(0) };
    }
    if (range) {
      return {
        status: 206,
        headers: { ...headers, 'content-range': `bytes ${range.start}-${range.end}/${content.length}` },
        body: content.subarray(range.start, range.end + 1),
      };
    }
    return { status: 200, headers, body: content };
  }
}

function header(ctx: RequestContext, name: string): string | undefined {
  const value = ctx.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** One `bytes=` range; multiple ranges are ignored (answered with the whole body, as RFC 9110 allows). */
function parseRange(value: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!value) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!match) return undefined;
  const [, startText, endText] = match;
  if (size === 0) return undefined;
  if (startText === '' && endText === '') return undefined;
  if (startText === '') {
    const suffix = Number(endText);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(startText);
  if (start >= size) return 'unsatisfiable';
  const end = endText === '' ? size - 1 : Math.min(Number(endText), size - 1);
  if (end < start) return undefined;
  return { start, end };
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw hubError(400, 'Request body is not valid JSON.');
  }
}

function clampInt(value: string | null, fallback: number, min: number, max: number): number {
  const n = value === null ? NaN : Number(value);
  return Number.isInteger(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/** Storage errors look like S3's (XML), as the real presigned URLs answer. */
function s3Error(status: number, code: string, message: string) {
  const error = hubError(status, message);
  error.reply.headers = { 'content-type': 'application/xml' };
  error.reply.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  return error;
}
