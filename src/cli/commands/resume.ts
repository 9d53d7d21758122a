/**
 * `resume list` and `resume clear`: the pending work in the resume journal (see
 * `uploader/journal.ts` and docs/resume.md), shown and cleared.
 *
 * @module
 */
import { UploadJournal, type JournalListEntry } from '../../uploader/journal.js';
import { listStagedArchives, type StagedArchiveEntry } from '../../uploader/archive-staging.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { formatBytes } from '../../core/format.js';
import { formatDuration, table } from '../format.js';

/** The journal of this invocation (`--journal-dir`, else the environment's default), without sweeping it: listing shows what is there. */
function openJournal(ctx: CliContext): Promise<UploadJournal> {
  return UploadJournal.open({ dir: ctx.journalDir(), env: ctx.env, logger: ctx.logger, sweep: false });
}

/** One record for `--json`. */
function entryJson(entry: JournalListEntry, now: number): Record<string, unknown> {
  const record = entry.record;
  if (!record) return { file: entry.file, corrupt: true, updatedAt: new Date(entry.updatedAt).toISOString(), ageMs: now - entry.updatedAt };
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

/** One record as a table row. */
function entryRow(entry: JournalListEntry, now: number): string[] {
  const age = `${formatDuration(now - entry.updatedAt)} ago`;
  const record = entry.record;
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

/** `resume clear [--older-than <age>]`: deletes records (all, or those older than the age); records of running uploads stay. */
export async function runResumeClear(ctx: CliContext, _args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const olderThanMs = options.olderThan as number | undefined;
  const journal = await openJournal(ctx);
  const now = Date.now();
  let removed: JournalListEntry[];
  let inUse: JournalListEntry[];
  let archives: string[] = [];
  if (ctx.globals.dryRun) {
    const due = (await journal.list()).filter((e) => olderThanMs === undefined || now - e.updatedAt >= olderThanMs);
    removed = due.filter((e) => !e.inUse);
    inUse = due.filter((e) => e.inUse);
  } else {
    ({ removed, inUse, archives } = await journal.clear({ olderThanMs }));
  }
  const orphans = removed.flatMap((e) => (e.record?.multipart ? [`${e.record.key.target} ${e.record.key.artifactPath} (upload id ${e.record.multipart.uploadId})`] : []));
  const verb = ctx.globals.dryRun ? 'Would remove' : 'Removed';
  const lines = [`${verb} ${removed.length} record(s) from the resume journal (${journal.dir})${olderThanMs !== undefined ? ` not updated for ${formatDuration(olderThanMs)}` : ''}.`];
  if (archives.length > 0) lines.push(`Removed ${archives.length} staged archive(s) of interrupted archive uploads.`);
  if (inUse.length > 0) lines.push(`Kept ${inUse.length} record(s) of uploads running now (${inUse.map((e) => `pid ${e.record?.owner.pid}`).join(', ')}).`);
  if (orphans.length > 0) {
    lines.push(
      `${orphans.length} of them named a multipart upload that was not completed; it stays in the bucket until aborted (a lifecycle rule with AbortIncompleteMultipartUpload does it):`,
      ...orphans.map((o) => `  ${o}`),
    );
  }
  return {
    exitCode: EXIT_CODES.OK,
    data: {
      journalDir: journal.dir,
      dryRun: ctx.globals.dryRun === true,
      removed: removed.map((e) => entryJson(e, now)),
      inUse: inUse.map((e) => entryJson(e, now)),
      archives,
    },
    text: lines.join('\n'),
  };
}
