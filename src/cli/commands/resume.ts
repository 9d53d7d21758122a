/**
 * `resume list` and `resume clear`: the pending work in the resume journal (see
 * `uploader/journal.ts` and docs/resume.md), shown and cleared.
 *
 * @module
 */
import { hostname } from 'node:os';
import { hasUnfinishedUpload, newerFormatHint, unreadableHint, UploadJournal, type JournalListEntry, type JournalRecord } from '../../uploader/journal.js';
import { abandonRecordUploads, isHttpTarget, proxyElsewhere, trackingTarget, type AbandonOutcome } from '../../uploader/abandon-records.js';
import { listStagedArchives, type StagedArchiveEntry } from '../../uploader/archive-staging.js';
import { trackingUriScheme } from '../../mlflow/tracking-uri.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { formatBytes, shellWord } from '../../core/format.js';
import { formatAge, formatDuration, table } from '../format.js';

/** The journal of this invocation (`--journal-dir`, else the environment's default), without sweeping it: listing shows what is there. */
function openJournal(ctx: CliContext): Promise<UploadJournal> {
  return UploadJournal.open({ dir: ctx.journalDir(), env: ctx.env, logger: ctx.logger, sweep: false });
}

/** One record for `--json`. */
function entryJson(entry: JournalListEntry, now: number): Record<string, unknown> {
  const record = entry.record;
  const age = { updatedAt: new Date(entry.updatedAt).toISOString(), ageMs: now - entry.updatedAt };
  if (entry.newerFormat !== undefined) return { file: entry.file, newerFormat: true, version: entry.newerFormat, ...age, hint: newerFormatHint() };
  if (entry.unreadable) return { file: entry.file, unreadable: true, ...age, hint: unreadableHint() };
  if (!record) return { file: entry.file, corrupt: true, ...age };
  return {
    file: entry.file,
    status: record.status,
    target: record.key.target,
    runId: record.key.runId,
    artifactPath: record.key.artifactPath,
    localPath: record.key.localPath,
    size: record.local.size,
    bytesDone: entry.bytesDone,
    ...(record.sha256 ? { sha256: record.sha256 } : {}),
    ...(record.multipart ? { multipart: { uploadId: record.multipart.uploadId, partSize: record.multipart.partSize, parts: record.multipart.parts.length } } : {}),
    ...(record.resumeToken ? { resumeToken: { store: record.resumeToken.store } } : {}),
    inUse: entry.inUse,
    owner: { pid: record.owner.pid, host: record.owner.host },
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
    ageMs: now - entry.updatedAt,
  };
}

/**
 * The processes that own records kept in use, each named once with how many records it holds:
 * a sweep's trials own a record per file they are uploading, and naming the owner per record
 * printed the same pid hundreds of times, hiding which trials were running.
 */
function runningOwners(inUse: readonly JournalListEntry[]): string {
  const counts = new Map<string, number>();
  for (const entry of inUse) {
    const owner = entry.record?.owner;
    const name = owner ? `pid ${owner.pid}${owner.host === hostname() ? '' : ` on ${owner.host}`}` : 'an unknown process';
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].map(([name, count]) => `${name}: ${count}`).join(', ');
}

/** One record as a table row. */
function entryRow(entry: JournalListEntry, now: number): string[] {
  const age = `${formatDuration(now - entry.updatedAt)} ago`;
  const record = entry.record;
  if (entry.newerFormat !== undefined) return ['newer format', '-', '-', entry.file, age, `version ${entry.newerFormat}. ${newerFormatHint()}`];
  if (entry.unreadable) return ['unreadable', '-', '-', entry.file, age, unreadableHint()];
  if (!record) return ['corrupt', '-', '-', entry.file, age, 'ignored; `resume clear` deletes it'];
  const progress = record.status === 'uploaded' ? formatBytes(record.local.size) : `${formatBytes(entry.bytesDone)} of ${formatBytes(record.local.size)}`;
  const notes = [
    record.multipart ? `multipart ${record.multipart.parts.length} part(s)` : '',
    record.resumeToken ? `${record.resumeToken.store} session` : '',
    entry.inUse ? `in use by pid ${record.owner.pid}` : '',
  ].filter(Boolean);
  return [record.status, progress, record.key.runId, `${record.key.target} ${record.key.artifactPath}`, age, notes.join(', ')];
}

/** One staged archive for `--json`. */
function archiveJson(staged: StagedArchiveEntry, now: number): Record<string, unknown> {
  const { key } = staged;
  return {
    dir: staged.dir,
    ...(key ? { target: key.target, runId: key.runId, artifactPath: key.artifactPath, directory: key.directory } : {}),
    size: staged.size,
    complete: staged.complete,
    inUse: staged.inUse,
    usedAt: new Date(staged.usedAt).toISOString(),
    ageMs: now - staged.usedAt,
  };
}

/** One staged archive as a table row. */
function archiveRow(staged: StagedArchiveEntry, now: number): string[] {
  const { key } = staged;
  const notes = [staged.complete ? 'complete' : 'incomplete (archived again on rerun)', staged.inUse ? 'in use' : ''].filter(Boolean);
  return [formatBytes(staged.size), key?.runId ?? '-', key ? `${key.target} ${key.artifactPath} (from ${key.directory})` : staged.dir, `${formatDuration(now - staged.usedAt)} ago`, notes.join(', ')];
}

/** `resume list`: every record of the journal, newest first, then the staged archives. */
export async function runResumeList(ctx: CliContext): Promise<CommandOutcome> {
  const journal = await openJournal(ctx);
  const entries = await journal.list();
  const archives = await listStagedArchives(journal.dir);
  const now = Date.now();
  const lines = [
    entries.length === 0
      ? `No pending uploads in the resume journal (${journal.dir}).`
      : `${entries.length} record(s) in the resume journal (${journal.dir}):\n${table([['STATUS', 'BYTES', 'RUN', 'DESTINATION', 'UPDATED', 'NOTES'], ...entries.map((e) => entryRow(e, now))])}`,
  ];
  if (archives.length > 0) {
    lines.push(`${archives.length} staged archive(s) of interrupted archive uploads:\n${table([['SIZE', 'RUN', 'DESTINATION', 'USED', 'NOTES'], ...archives.map((a) => archiveRow(a, now))])}`);
  }
  return {
    exitCode: EXIT_CODES.OK,
    data: { journalDir: journal.dir, entries: entries.map((e) => entryJson(e, now)), archives: archives.map((a) => archiveJson(a, now)) },
    text: lines.join('\n'),
  };
}

/**
 * What `resume clear` says of a removed record's upload (`--dry-run`: `would-abort`, nothing
 * asked yet; `unknown`: a record removed unread with `--remove-unreadable`, whose upload, if any,
 * could not be given up).
 */
type ClearedUpload = AbandonOutcome | { upload: 'would-abort' } | { upload: 'unknown' };

/**
 * The server an `mlflow-artifacts://<host>/...` record names when it is not the command's own
 * (`own`, as {@link trackingTarget} writes it), as records name servers; `undefined` otherwise,
 * and for a host that makes no URL (the real clear says so for that record).
 */
function proxyServerOf(target: string, own: string): string | undefined {
  try {
    const server = proxyElsewhere(target, isHttpTarget(own) ? own : undefined);
    return server === undefined ? undefined : trackingTarget(server);
  } catch {
    return undefined;
  }
}

/** A refused lookup's upload is still on the store: `left` in `--json`, with the reason and the server. */
function leftAsLeft(outcome: ClearedUpload): Record<string, unknown> {
  return outcome.upload === 'refused' ? { ...outcome, upload: 'left' } : outcome;
}

/** The unfinished upload a record names, for the text output (a session URI is a capability: never shown). */
function uploadLabel(record: JournalRecord): string {
  const what = record.multipart
    ? `multipart upload, upload id ${record.multipart.uploadId}`
    : record.resumeToken
      ? `${record.resumeToken.store} resumable session`
      : 'multipart upload being created when it stopped';
  return `${record.key.target} ${record.key.artifactPath} (${what})`;
}

/**
 * `resume clear [--older-than <age>] [--keep-uploads] [--remove-unreadable]`: deletes records
 * (all, or those older than the age) and gives up the unfinished uploads they name, each run's
 * store resolved as an upload resolves it; records of running uploads stay, and so do records
 * that cannot be read now (what they name is unknown) unless `--remove-unreadable` says to
 * remove them as they are. A store that cannot be reached leaves its
 * uploads (said, with why, and what removes them); the command still succeeds: the records are
 * gone either way, and a lifecycle rule is the backstop. The one exception: the environment's
 * MLflow credentials go only to the command's own tracking server, so a record of another
 * server that refuses the lookup without them is kept, with the command that gives it up.
 */
export async function runResumeClear(ctx: CliContext, _args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const olderThanMs = options.olderThan as number | undefined;
  const keepUploads = options.keepUploads === true;
  const removeUnreadable = options.removeUnreadable === true;
  const dryRun = ctx.globals.dryRun === true;
  const journal = await openJournal(ctx);
  const now = Date.now();
  // A dry run is refused where the real clear would be (a journal this user cannot write).
  const cleared = await journal.clear({ olderThanMs, dryRun, removeUnreadable });
  const { inUse, newerFormat, unreadable, archives, at } = cleared;
  let removed = cleared.removed;
  // The records are gone before their uploads are given up: a store that cannot be reached
  // never keeps a record (the rule of `resume clear` before uploads were given up).
  const outcomes = new Map<JournalListEntry, ClearedUpload>();
  const removedUnread = removed.filter((e) => e.unreadable);
  for (const e of removedUnread) outcomes.set(e, { upload: 'unknown' });
  const pending = removed.filter((e) => e.record && hasUnfinishedUpload(e.record));
  if (keepUploads) {
    for (const e of pending) outcomes.set(e, { upload: 'left', reason: 'kept (--keep-uploads)' });
  } else if (dryRun) {
    for (const e of pending) outcomes.set(e, { upload: 'would-abort' });
  } else if (pending.length > 0) {
    const results = await abandonRecordUploads(
      pending.map((e) => e.record!),
      // A record's target whose scheme is a store's (not a tracking URI) is reached over the command's tracking URI.
      { env: ctx.env, logger: ctx.logger, signal: ctx.signal, takenOverAt: at, trackingUri: commandTrackingUri(ctx) },
    );
    pending.forEach((e, i) => outcomes.set(e, results[i]!));
  }
  // A server the command did not name refused the lookup without the credentials withheld from
  // it: its records go back into the journal, for a clear pointed at that server (or for its
  // next upload, which gives an expired record's upload up over its own connection).
  const reasonOf = (e: JournalListEntry) => {
    const outcome = outcomes.get(e);
    return outcome && 'reason' in outcome ? outcome.reason : '';
  };
  const kept: JournalListEntry[] = [];
  for (const e of pending) {
    if (outcomes.get(e)?.upload === 'refused' && (await journal.restore(e))) kept.push(e);
  }
  removed = removed.filter((e) => !kept.includes(e));
  const own = trackingTarget(commandTrackingUri(ctx) ?? 'none');
  const verb = dryRun ? 'Would remove' : 'Removed';
  const lines = [`${verb} ${removed.length} record(s) from the resume journal (${journal.dir})${olderThanMs !== undefined ? ` not updated for ${formatDuration(olderThanMs)}` : ''}.`];
  if (kept.length > 0) {
    // The server that refused: the record's target, or the host its mlflow-artifacts:// URI names.
    const servers = [...new Set(kept.map((e) => (outcomes.get(e) as Extract<AbandonOutcome, { upload: 'refused' }>).server))];
    // The same journal and age as this command's: not the default journal, nor younger records.
    const same = `${ctx.journalDir() !== undefined ? ` --journal-dir ${shellWord(journal.dir)}` : ''}${olderThanMs !== undefined ? ` --older-than ${formatAge(olderThanMs)}` : ''}`;
    lines.push(
      `Kept ${kept.length} record(s) whose tracking server refused to look their run up, or to give their upload up, without credentials: \`resume clear\` sends the environment's MLflow credentials only to its own tracking server (${own}), not to the others the journal names:`,
      ...kept.map((e) => `  ${uploadLabel(e.record!)}: ${reasonOf(e)}`),
      `To give their uploads up, run it against that server with its credentials in the environment: ${servers.map((server) => `\`artifact-uploader resume clear --tracking-uri ${shellWord(server)}${same}\``).join(', ')}. \`--keep-uploads\` removes the records and leaves the uploads.`,
    );
  }
  if (archives.length > 0) lines.push(`${verb} ${archives.length} staged archive(s) of interrupted archive uploads.`);
  if (inUse.length > 0) lines.push(`Kept ${inUse.length} record(s) of uploads running now (${runningOwners(inUse)}).`);
  if (newerFormat.length > 0) {
    lines.push(
      `${dryRun ? 'Would leave' : 'Left'} ${newerFormat.length} record(s) of a newer journal format:`,
      ...newerFormat.map((e) => `  ${e.file} (version ${e.newerFormat})`),
      newerFormatHint(newerFormat.length),
    );
  }
  if (unreadable.length > 0) {
    lines.push(`${dryRun ? 'Would leave' : 'Left'} ${unreadable.length} record(s) that could not be read:`, ...unreadable.map((e) => `  ${e.file}`), unreadableHint(unreadable.length));
  }
  if (removedUnread.length > 0) {
    lines.push(
      `${removedUnread.length} of them ${dryRun ? 'would be' : 'were'} removed unread (--remove-unreadable): an unfinished upload one named, if any, is not given up (an S3 multipart upload's parts stay billed until a lifecycle rule with AbortIncompleteMultipartUpload aborts it):`,
      ...removedUnread.map((e) => `  ${e.file}`),
    );
  }
  const of = (kind: ClearedUpload['upload']) => pending.filter((e) => outcomes.get(e)?.upload === kind);
  const wouldAbort = of('would-abort');
  if (wouldAbort.length > 0) {
    lines.push(`${wouldAbort.length} of them name an unfinished upload that would be given up (aborted, or its session cancelled):`, ...wouldAbort.map((e) => `  ${uploadLabel(e.record!)}`));
    // The servers other than the command's own whose targets pass `kind`.
    const others = (kind: (target: string) => boolean) => [...new Set(wouldAbort.map((e) => e.record!.key.target).filter((t) => kind(t) && trackingTarget(t) !== own))];
    // And the servers that `mlflow-artifacts://<host>` records name, asked the same way.
    const proxied = wouldAbort.map((e) => proxyServerOf(e.record!.key.target, own)).filter((t) => t !== undefined);
    const elsewhere = [...new Set([...others(isHttpTarget), ...proxied])];
    if (elsewhere.length > 0) {
      lines.push(`Records of ${elsewhere.join(', ')} are asked there without credentials (they go only to ${own}); if that server refuses, they are kept, not removed.`);
    }
    const workspaces = others((t) => trackingUriScheme(t) === 'azureml');
    if (workspaces.length > 0) {
      lines.push(`Records of the Azure ML workspace(s) ${workspaces.join(', ')} are not asked (credentials go only to ${own}): they are removed, and their uncommitted blocks expire on their own.`);
    }
  }
  const aborted = of('aborted');
  if (aborted.length > 0) {
    lines.push(`Gave up ${aborted.length} unfinished upload(s) they named (aborted, or the session cancelled):`, ...aborted.map((e) => `  ${uploadLabel(e.record!)}`));
  }
  // A refused record that could not be put back (a rerun's record took its place) is left, like any other.
  const left = pending.filter((e) => !kept.includes(e) && (outcomes.get(e)?.upload === 'left' || outcomes.get(e)?.upload === 'refused'));
  if (left.length > 0) {
    lines.push(
      `${left.length} unfinished upload(s) they named ${dryRun ? 'would be' : 'were'} left on the store: an S3 multipart upload's parts stay billed until aborted (a lifecycle rule with AbortIncompleteMultipartUpload does it); GCS forgets a session after a week; Azure discards uncommitted blocks on its own:`,
      ...left.map((e) => `  ${uploadLabel(e.record!)}: ${reasonOf(e)}`),
    );
    for (const e of left) {
      if (!keepUploads) ctx.logger.warn(`Left the unfinished upload of ${uploadLabel(e.record!)}: ${reasonOf(e)}`);
    }
  }
  return {
    exitCode: ctx.signal?.aborted && !dryRun && !keepUploads && pending.length > 0 ? EXIT_CODES.INTERRUPTED : EXIT_CODES.OK,
    data: {
      journalDir: journal.dir,
      dryRun,
      keepUploads,
      removed: removed.map((e) => ({ ...entryJson(e, now), ...leftAsLeft(outcomes.get(e) ?? { upload: 'none' }) })),
      kept: kept.map((e) => ({ ...entryJson(e, now), ...leftAsLeft(outcomes.get(e)!) })),
      inUse: inUse.map((e) => entryJson(e, now)),
      newerFormat: newerFormat.map((e) => entryJson(e, now)),
      unreadable: unreadable.map((e) => entryJson(e, now)),
      archives,
    },
    text: lines.join('\n'),
  };
}

/** The command's tracking URI, or `undefined` when it is not usable (a record naming a store's URI then gets the default). */
function commandTrackingUri(ctx: CliContext): string | undefined {
  try {
    return ctx.trackingUri();
  } catch {
    return undefined;
  }
}
