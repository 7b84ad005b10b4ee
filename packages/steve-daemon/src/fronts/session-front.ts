/**
 * The adapter between a libfuse3 session (CUSE device or FUSE file) and the
 * pool server: kernel requests become scheduler events, replies go back as
 * libfuse replies. Both `cuse.ts` and `fuse.ts` use it; only how the
 * session starts differs.
 */

import { constants as fsConstants } from 'node:fs';
import { constants } from 'node:os';
import type { Reply } from '../core/index.js';
import type { FrontConnection, FrontPort, PoolServer } from '../daemon/pool-server.js';
import {
  type RequestContext,
  type Session,
  type SessionFile,
  type SessionHandlers,
  REPLY_EMPTY,
  pollEvents,
} from '../native/addon.js';

// Linux's O_NONBLOCK (04000 on x86, arm and most others); Node exposes it only in fs.constants.
const O_NONBLOCK = fsConstants.O_NONBLOCK;
const ERRNO: Readonly<Record<'EAGAIN' | 'EINTR' | 'ENOSPC', number>> = {
  EAGAIN: constants.errno.EAGAIN,
  EINTR: constants.errno.EINTR,
  ENOSPC: constants.errno.ENOSPC,
};
const POLL_WRITABLE = pollEvents.POLLOUT | pollEvents.POLLWRNORM;
const POLL_READABLE = pollEvents.POLLIN | pollEvents.POLLRDNORM;
const TOKEN_BUFFERS: Buffer[] = [];

/** A read's or write's reply as its handler's return value (SessionHandlers.read), if it has one. */
function answerOf(reply: Reply): number | undefined {
  switch (reply.kind) {
    case 'token':
      return reply.byte;
    case 'empty':
      return REPLY_EMPTY;
    case 'written':
      return reply.countBytes;
    case 'error':
      return -ERRNO[reply.errno];
    default:
      return undefined;
  }
}
const EMPTY = Buffer.alloc(0);

export interface SessionFrontOptions {
  readonly name: string;
  /** Text of the FUSE `status` file. */
  readonly statusText: (ctx: RequestContext) => string;
  /** The session ended by itself (unmounted, device gone) rather than by `close()`. */
  readonly onUnexpectedClose: (reason: string) => void;
}

/** Builds session handlers bound to the server, and the port the server replies through. */
export class SessionFront implements FrontPort {
  readonly name: string;
  private session: Session | null = null;
  private readonly connection: FrontConnection;
  private readonly jobserverFiles = new Set<number>();
  private closing = false;

  constructor(
    private readonly server: PoolServer,
    private readonly options: SessionFrontOptions,
  ) {
    this.name = options.name;
    this.connection = server.connect(this);
  }

  /** Attach the started session (replies need it). */
  attach(session: Session): void {
    this.session = session;
  }

  close(): void {
    this.closing = true;
    this.session?.close();
  }

  handlers(): SessionHandlers {
    const pidOf = (ctx: RequestContext): number => this.server.threadGroups.processOf(ctx.tid);
    return {
      open: (fileId: number, ctx: RequestContext, _flags: number, path: SessionFile) => {
        if (path !== 'jobserver') return;
        this.jobserverFiles.add(fileId);
        this.connection.event({
          type: 'open',
          fileId: this.connection.file(fileId),
          pid: pidOf(ctx),
        });
      },
      release: (fileId: number) => {
        if (!this.jobserverFiles.delete(fileId)) return;
        const id = this.connection.releaseFile(fileId);
        if (id !== undefined) this.connection.event({ type: 'close', fileId: id });
      },
      read: (
        reqId: number,
        fileId: number,
        tid: number,
        uid: number,
        sizeBytes: number,
        flags: number,
      ): number | undefined => {
        this.answering = reqId;
        this.connection.event({
          type: 'read',
          requestId: this.connection.request(reqId),
          fileId: this.connection.file(fileId),
          pid: this.server.threadGroups.processOf(tid),
          blocking: (flags & O_NONBLOCK) === 0,
          sizeBytes,
          uid,
        });
        return this.takeAnswer();
      },
      write: (
        reqId: number,
        fileId: number,
        tid: number,
        _uid: number,
        sizeBytes: number,
      ): number | undefined => {
        this.answering = reqId;
        this.connection.event({
          type: 'write',
          requestId: this.connection.request(reqId),
          fileId: this.connection.file(fileId),
          pid: this.server.threadGroups.processOf(tid),
          sizeBytes,
        });
        return this.takeAnswer();
      },
      poll: (reqId: number, fileId: number, ctx: RequestContext, pollHandleId: number) => {
        this.connection.event({
          type: 'poll',
          requestId: this.connection.request(reqId),
          fileId: this.connection.file(fileId),
          pid: pidOf(ctx),
          pollHandleId: pollHandleId === 0 ? null : this.connection.pollHandle(pollHandleId),
          uid: ctx.uid,
        });
      },
      interrupt: (reqId: number) => {
        const id = this.connection.pendingRequest(reqId);
        if (id !== undefined) this.connection.event({ type: 'interrupt', requestId: id });
      },
      statusText: (ctx: RequestContext) => this.options.statusText(ctx),
      closed: (reason: string) => {
        if (!this.closing) this.options.onUnexpectedClose(reason);
      },
    };
  }

  // ---- FrontPort -----------------------------------------------------------

  /**
   * The read or write whose handler is running, and its answer once the
   * core gave it: returned to the native side instead of a reply call
   * (see SessionHandlers.read). -1: none.
   */
  private answering = -1;
  private answer: number | undefined = undefined;

  private takeAnswer(): number | undefined {
    const answer = this.answer;
    this.answering = -1;
    this.answer = undefined;
    return answer;
  }

  reply(localRequestId: number, reply: Reply): void {
    if (localRequestId === this.answering) {
      this.answering = -1;
      this.answer = answerOf(reply);
      if (this.answer !== undefined) return;
    }
    const session = this.session;
    if (!session) return;
    switch (reply.kind) {
      case 'token':
        // The native side copies the bytes into its reply at once: one
        // buffer per byte value serves every reply (no allocation per token).
        session.replyData(
          localRequestId,
          (TOKEN_BUFFERS[reply.byte] ??= Buffer.from([reply.byte])),
        );
        return;
      case 'empty':
        session.replyData(localRequestId, EMPTY);
        return;
      case 'written':
        session.replyWrite(localRequestId, reply.countBytes);
        return;
      case 'poll':
        session.replyPoll(localRequestId, POLL_WRITABLE | (reply.readable ? POLL_READABLE : 0));
        return;
      case 'error':
        session.replyError(localRequestId, ERRNO[reply.errno]);
        return;
    }
  }

  notifyPoll(localPollHandleId: number): void {
    this.session?.notifyPoll(localPollHandleId);
  }

  dropPollHandle(localPollHandleId: number): void {
    this.session?.dropPollHandle(localPollHandleId);
  }
}
