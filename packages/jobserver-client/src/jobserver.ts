/**
 * `Jobserver`: a client of a GNU make jobserver (fifo or pipe style), and
 * with `Jobserver.create(n)` a private pool served to children.
 */

import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StdioNull, StdioPipe } from 'node:child_process';
import {
  EMPTY_MAKEFLAGS,
  InvalidArgumentError,
  type JobserverAuth,
  type MakeFlags,
  MAKEFLAGS_ENV_VARS,
  TOKEN_BYTE,
  UnsupportedAuthError,
  formatJobserverAuth,
  makeflagsForChild,
  makeflagsFromEnv,
  parseMakeflags,
} from '@steve/protocol';
import { openPrivate, pipeAuthProblem, readTokenByte, writeTokenByte } from './descriptor.js';
import { JobserverClosedError, JobserverGoneError, abortReason } from './errors.js';
import { track, untrack } from './exit.js';
import { debug, nativeHelper } from './native.js';
import { Token, markReleased } from './token.js';
import { type Readiness, type WaitStrategy, watchReadable } from './wait.js';

/** A usable auth: where the pool is. */
export type PoolAuth = Extract<JobserverAuth, { kind: 'fifo' | 'pipe' }>;

/**
 * How a child reaches the pool:
 * - `'fifo'`: `--jobserver-auth=fifo:PATH` (GNU make >= 4.4, cargo,
 *   ninja >= 1.13, jobserver-rs); the child opens the path itself.
 * - `'pipe'`: `--jobserver-auth=N,N`, one inherited read-write descriptor
 *   mapped into the child's stdio at index N (GNU make < 4.4, which stops
 *   with "invalid --jobserver-auth string" on a fifo auth).
 */
export type ChildStyle = 'fifo' | 'pipe';

/** One entry of `child_process.spawn`'s `stdio` array. */
export type StdioEntry = StdioPipe | StdioNull | 'inherit' | 'ipc' | number | null | undefined;

/** Options shared by every way of opening a Jobserver. */
export interface OpenOptions {
  /**
   * Whether this process has the implicit slot (default `true`): its
   * parent took a token for it, so the first `acquire()` reads nothing.
   * Pass `false` where nobody took one for you (a shell wrapper taking a
   * token from the system-wide pool for a command).
   */
  readonly implicitSlot?: boolean;
  /** `'auto'` (default): the native uv_poll helper when built, else the pure-JS wait. */
  readonly wait?: WaitStrategy | 'auto';
  /** The MAKEFLAGS this pool came with, kept (minus `-j`) for children. */
  readonly flags?: MakeFlags;
}

/** Options of {@link Jobserver.fromEnv}. */
export interface FromEnvOptions extends Omit<OpenOptions, 'flags'> {
  /** Directory a relative `fifo:` path is resolved against (default `process.cwd()`). */
  readonly cwd?: string;
  /**
   * Called with a one-line warning when MAKEFLAGS names a jobserver that
   * cannot be used (default: `process.emitWarning` with code
   * `STEVE_JOBSERVER_UNAVAILABLE`).
   */
  readonly warn?: (message: string) => void;
}

/** Options of {@link Jobserver.acquire} and {@link Jobserver.run}. */
export interface AcquireOptions {
  /** Abort the wait; the promise rejects with the signal's reason and no token is kept. */
  readonly signal?: AbortSignal;
}

/** Options of {@link Jobserver.childEnv}, {@link Jobserver.spawnOptions}. */
export interface ChildOptions {
  /** Default: `'fifo'` when the pool has a path, `'pipe'` for an inherited pipe. */
  readonly style?: ChildStyle;
}

interface Waiter {
  readonly resolve: (token: Token) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

const UNAVAILABLE_HINT = "jobserver unavailable: using -j1.  Add '+' to parent make rule.";
/** A pipe holds 64 KiB by default; `create()` writes its tokens up front. */
const MAX_CREATE_TOKENS = 65536;

function defaultWarn(message: string): void {
  process.emitWarning(message, { code: 'STEVE_JOBSERVER_UNAVAILABLE' });
}

/**
 * A connection to a jobserver's token pool.
 *
 * Tokens are read exactly one byte per read on a private, non-blocking open
 * file description; waiting happens on the event loop (native `uv_poll`, or
 * a bounded-backoff fallback). Held tokens are written back on `close()`,
 * on process exit and on SIGINT/SIGTERM/SIGHUP.
 */
export class Jobserver {
  /** The pool as this process reaches it (`fifo:PATH`, or inherited `R,W`). */
  readonly auth: PoolAuth;
  /** The path opened for the private descriptor: the fifo path, or `/proc/self/fd/R`. */
  readonly path: string;
  /** The MAKEFLAGS the pool came with (what children inherit, minus `-j`). */
  readonly flags: MakeFlags;

  readonly #fd: number;
  readonly #readiness: Readiness;
  readonly #held = new Set<Token>();
  readonly #waiters: Waiter[] = [];
  readonly #ownedDir: string | null;
  #implicitFree: boolean;
  /** The implicit slot's current Token while taken. */
  #implicitToken: Token | null = null;
  #childFd: number | null = null;
  #closed = false;
  #broken: JobserverGoneError | null = null;

  private constructor(
    auth: PoolAuth,
    path: string,
    fd: number,
    options: OpenOptions,
    ownedDir: string | null,
  ) {
    this.auth = auth;
    this.path = path;
    this.flags = options.flags ?? EMPTY_MAKEFLAGS;
    this.#fd = fd;
    this.#ownedDir = ownedDir;
    this.#implicitFree = options.implicitSlot ?? true;
    this.#readiness = watchReadable(fd, () => this.#onReadable(), options.wait ?? 'auto');
    track(this);
    debug('opened %s (fd %d, %s wait)', formatJobserverAuth(auth), fd, this.#readiness.strategy);
  }

  /**
   * The jobserver this process inherited, from `CARGO_MAKEFLAGS`,
   * `MAKEFLAGS` or `MFLAGS` (the first one set; within it the last
   * `--jobserver-auth=` wins), or `null` when there is none.
   *
   * When the variable names a jobserver that cannot be used, `warn` is
   * called with a message like make's ("jobserver unavailable: using -j1.
   * Add '+' to parent make rule.") and `null` is returned: descriptors that
   * are not open (a recipe without `+`), that are something else (Node's
   * own epoll descriptor or internal pipe at 3/4), an unsupported auth, a
   * fifo path that cannot be opened. A disabled auth (`-2,-2`) gives
   * `null` silently.
   *
   * @example
   * const jobserver = Jobserver.fromEnv() ?? Jobserver.create(os.availableParallelism());
   * await jobserver.run(() => compile(file));
   *
   * Errors: throws InvalidArgumentError when `cwd` is relative; every other
   * problem is a warning and `null`.
   */
  static fromEnv(
    env: Readonly<Record<string, string | undefined>> = process.env,
    options: FromEnvOptions = {},
  ): Jobserver | null {
    const warn = options.warn ?? defaultWarn;
    const found = makeflagsFromEnv(env, options.cwd ?? process.cwd());
    const auth = found?.flags.jobserverAuth ?? null;
    if (found === null || auth === null) return null;
    const from = `${found.variable}=${JSON.stringify(found.value)}`;
    const openOptions: OpenOptions = { ...options, flags: found.flags };
    switch (auth.kind) {
      case 'disabled':
        debug('jobserver disabled by %s', from);
        return null;
      case 'unsupported':
        warn(
          `${UNAVAILABLE_HINT} (unsupported --jobserver-auth '${auth.raw}' in ${from}: ${auth.reason})`,
        );
        return null;
      case 'pipe': {
        const problem = pipeAuthProblem(auth.readFd, auth.writeFd);
        if (problem !== null) {
          warn(`${UNAVAILABLE_HINT} (${problem}; ${formatJobserverAuth(auth)} in ${from})`);
          return null;
        }
        break;
      }
      case 'fifo':
        break;
    }
    try {
      return Jobserver.fromAuth(auth, openOptions);
    } catch (error) {
      warn(
        `${UNAVAILABLE_HINT} (cannot open ${formatJobserverAuth(auth)} from ${found.variable}: ${(error as Error).message})`,
      );
      return null;
    }
  }

  /**
   * Connect to a pool named by an auth: `{ kind: 'fifo', path }` (a fifo,
   * the steve CUSE device, the steve FUSE file) or `{ kind: 'pipe',
   * readFd, writeFd }` (inherited descriptors, checked as `fromEnv` does).
   *
   * @example
   * const steve = Jobserver.fromAuth({ kind: 'fifo', path: '/dev/steve' }, { implicitSlot: false });
   *
   * Errors: UnsupportedAuthError for a `disabled`/`unsupported` auth or
   * descriptors that are not a jobserver; the `open` error (ENOENT,
   * EACCES, …) when the path cannot be opened.
   */
  static fromAuth(auth: JobserverAuth, options: OpenOptions = {}): Jobserver {
    if (auth.kind === 'disabled' || auth.kind === 'unsupported') {
      throw new UnsupportedAuthError(
        auth.raw,
        auth.kind === 'disabled' ? 'the jobserver is disabled' : auth.reason,
      );
    }
    let path: string;
    if (auth.kind === 'pipe') {
      const problem = pipeAuthProblem(auth.readFd, auth.writeFd);
      if (problem !== null)
        throw new UnsupportedAuthError(`${auth.readFd},${auth.writeFd}`, problem);
      path = `/proc/self/fd/${auth.readFd}`;
    } else {
      path = auth.path;
    }
    const fd = openPrivate(path);
    return new Jobserver(auth, path, fd, options, null);
  }

  /**
   * A private pool for `jobs` concurrent jobs, served like make serves
   * `-jN`: a fifo in a fresh private directory (mode 0700) holding
   * `jobs - 1` tokens, plus this process's implicit slot. Give it to
   * children with {@link childEnv}/{@link spawnOptions} or
   * {@link runWithToken}; `close()` (or exit) removes the directory.
   *
   * @example
   * const pool = Jobserver.fromEnv() ?? Jobserver.create(4);
   * const status = await runWithToken('cargo', ['build', '--offline'], { jobserver: pool });
   *
   * Errors: InvalidArgumentError unless `1 <= jobs <= 65537`; the
   * mkdtemp/mkfifo/open error otherwise.
   */
  static create(jobs: number, options: Omit<OpenOptions, 'implicitSlot'> = {}): Jobserver {
    if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs - 1 > MAX_CREATE_TOKENS) {
      throw new InvalidArgumentError(
        `jobs must be an integer from 1 to ${MAX_CREATE_TOKENS + 1}, got ${jobs}`,
      );
    }
    const dir = mkdtempSync(join(tmpdir(), 'jobserver-'));
    const path = join(dir, 'fifo');
    try {
      makeFifo(path);
      const fd = openPrivate(path);
      if (jobs > 1) {
        const tokens = Buffer.alloc(jobs - 1, TOKEN_BYTE);
        for (let written = 0; written < tokens.length;) {
          written += writeSync(fd, tokens, written, tokens.length - written, null);
        }
      }
      return new Jobserver(
        { kind: 'fifo', path },
        path,
        fd,
        { ...options, implicitSlot: true },
        dir,
      );
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** `'native'` (uv_poll) or `'fallback'` (pure-JS backoff): how this client waits. */
  get waitStrategy(): WaitStrategy {
    return this.#readiness.strategy;
  }

  /** Explicit tokens (bytes read) this client holds now. */
  get heldTokens(): number {
    return this.#held.size;
  }

  /** True while the implicit slot is taken. */
  get implicitHeld(): boolean {
    return !this.#implicitFree;
  }

  /** `acquire()` calls waiting now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Wait for a token. The first one (while the implicit slot is free) is the
   * implicit slot and resolves at once; later ones read one byte from the
   * pool, waiting on the event loop. Waiters are served in call order.
   *
   * @example
   * const token = await jobserver.acquire({ signal: AbortSignal.timeout(60_000) });
   * try { await work(); } finally { token.release(); }
   *
   * Errors: rejects with the signal's reason when aborted (no token is kept:
   * nothing is read for an aborted waiter); JobserverClosedError after or
   * during `close()`; JobserverGoneError when the pool's read fails or hits
   * end of file (the server is gone).
   */
  acquire(options: AcquireOptions = {}): Promise<Token> {
    const { signal } = options;
    try {
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      if (this.#waiters.length === 0) {
        const token = this.tryAcquire();
        if (token !== null) return Promise.resolve(token);
      } else {
        this.#checkUsable();
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<Token>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiters.indexOf(waiter);
          if (index >= 0) this.#waiters.splice(index, 1);
          if (this.#waiters.length === 0) this.#readiness.stop();
          reject(abortReason(signal as AbortSignal));
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#readiness.start();
    });
  }

  /**
   * Take a token now if one is free, without waiting: the implicit slot,
   * else one byte read without blocking. Returns `null` when none is
   * available now or when `acquire()` calls are already waiting (they come
   * first).
   *
   * @example
   * const extra = jobserver.tryAcquire();
   * if (extra) startAnotherWorker(extra);
   *
   * Errors: JobserverClosedError after `close()`; JobserverGoneError when
   * the server is gone.
   */
  tryAcquire(): Token | null {
    this.#checkUsable();
    if (this.#waiters.length > 0) return null;
    if (this.#implicitFree) {
      this.#implicitFree = false;
      return this.#implicit();
    }
    const byte = this.#read();
    if (byte === 'again') return null;
    return this.#explicit(byte);
  }

  /**
   * Run `fn` while holding a token; the token is released when `fn`'s
   * promise settles, whatever the outcome.
   *
   * @example
   * const sizes = await Promise.all(files.map((f) => jobserver.run(() => compress(f))));
   *
   * Errors: whatever `acquire()` rejects with (then `fn` is not called), or
   * whatever `fn` throws.
   */
  async run<T>(fn: (token: Token) => T | Promise<T>, options: AcquireOptions = {}): Promise<T> {
    const token = await this.acquire(options);
    try {
      return await fn(token);
    } finally {
      token.release();
    }
  }

  /**
   * Wrap `fn` so that every call runs while holding a token (like
   * p-limit, with the jobserver as the limit).
   *
   * @example
   * const compileLimited = jobserver.limit(compile);
   * await Promise.all(files.map((f) => compileLimited(f)));
   *
   * Errors: the wrapped function rejects as {@link run} does.
   */
  limit<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>): (...args: A) => Promise<R> {
    return (...args: A) => this.run(() => fn(...args));
  }

  /**
   * The environment a child needs to use this pool: `MAKEFLAGS` with the
   * auth set (`fifo:PATH`, or `N,N` for pipe style with the descriptor at
   * index `fd` of the child's stdio, default 3), every `-jN` removed (a
   * `-jN` resets a sub-make's jobserver) and other flags kept.
   * `CARGO_MAKEFLAGS` and `MFLAGS` get the same value when `env` has them,
   * so no stale auth is left for a child that looks there first.
   *
   * For pipe style the descriptor must also be mapped: use
   * {@link spawnOptions} (or {@link childStdio}) — Node marks inherited
   * descriptors close-on-exec, so a child gets nothing it is not given.
   *
   * @example
   * spawn('make', [], { env: jobserver.childEnv(), stdio: 'inherit' }); // make >= 4.4
   *
   * Errors: InvalidArgumentError for `style: 'fifo'` on an inherited pipe
   * (it has no path a child could open).
   */
  childEnv(
    env: Readonly<Record<string, string | undefined>> = process.env,
    options: ChildOptions & { fd?: number } = {},
  ): NodeJS.ProcessEnv {
    const style = this.#style(options.style);
    const fd = options.fd ?? 3;
    const auth: PoolAuth =
      style === 'fifo'
        ? { kind: 'fifo', path: this.path }
        : { kind: 'pipe', readFd: fd, writeFd: fd };
    // The child's MAKEFLAGS keeps what MAKEFLAGS says (else the first variable set, else ours).
    const found =
      env.MAKEFLAGS !== undefined
        ? parseMakeflags(env.MAKEFLAGS, process.cwd())
        : makeflagsFromEnv(env, process.cwd())?.flags;
    const value = makeflagsForChild(found ?? this.flags, auth);
    const result: NodeJS.ProcessEnv = { ...env, MAKEFLAGS: value };
    for (const variable of MAKEFLAGS_ENV_VARS) {
      if (variable !== 'MAKEFLAGS' && env[variable] !== undefined) result[variable] = value;
    }
    return result;
  }

  /**
   * A `stdio` array for `spawn` with this pool's descriptor at index `fd`
   * (default: right after `stdio`, i.e. 3 for the usual three), for pipe
   * style. The descriptor is a separate, *blocking* open file description
   * of the pool (children such as make 4.3 set their own flags on it),
   * opened once and closed by `close()`.
   *
   * Errors: the `open` error if the pool cannot be opened again.
   */
  childStdio(
    stdio: readonly StdioEntry[] = ['inherit', 'inherit', 'inherit'],
    fd = Math.max(3, stdio.length),
  ): StdioEntry[] {
    this.#checkUsable();
    if (this.#childFd === null) this.#childFd = openPrivate(this.path, false);
    const result: StdioEntry[] = [...stdio];
    while (result.length < fd) result.push('ignore');
    result[fd] = this.#childFd;
    return result;
  }

  /**
   * `env` and `stdio` for `child_process.spawn` (or execa) so the child
   * uses this pool: fifo style needs only the environment; pipe style maps
   * the descriptor too.
   *
   * @example
   * // GNU make 4.3: pipe style
   * const child = spawn('make', ['-C', dir], jobserver.spawnOptions({ style: 'pipe' }));
   *
   * Errors: as {@link childEnv} and {@link childStdio}.
   */
  spawnOptions(
    options: ChildOptions & {
      env?: Readonly<Record<string, string | undefined>>;
      stdio?: readonly StdioEntry[];
    } = {},
  ): { env: NodeJS.ProcessEnv; stdio: StdioEntry[] } {
    const style = this.#style(options.style);
    const stdio = [...(options.stdio ?? ['inherit', 'inherit', 'inherit'])];
    if (style === 'fifo') return { env: this.childEnv(options.env, { style }), stdio };
    const fd = Math.max(3, stdio.length);
    return { env: this.childEnv(options.env, { style, fd }), stdio: this.childStdio(stdio, fd) };
  }

  /**
   * Return every token (explicit ones written back; the implicit slot
   * freed), reject waiting `acquire()` calls with JobserverClosedError, and
   * close the descriptors. For a pool made by {@link create}, remove its
   * fifo. Idempotent.
   *
   * @example
   * process.once('beforeExit', () => jobserver.close());
   *
   * Errors: none; failures to write back are logged under NODE_DEBUG=jobserver.
   */
  close(): void {
    if (this.#closed) return;
    this.#shutdown(new JobserverClosedError('the jobserver client was closed while waiting'));
  }

  /** @internal Called by the exit hooks: like close(), and never throws. */
  cleanupAtExit(): void {
    if (this.#closed) return;
    this.#shutdown(new JobserverClosedError('the process is exiting'));
  }

  #shutdown(reason: Error): void {
    this.#closed = true;
    untrack(this);
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.reject(reason);
    }
    for (const token of this.#held) {
      markReleased(token);
      this.#writeBackQuietly(token.byte as number);
    }
    this.#held.clear();
    if (this.#implicitToken !== null) markReleased(this.#implicitToken);
    this.#implicitToken = null;
    this.#implicitFree = true;
    this.#readiness.close();
    for (const fd of [this.#fd, this.#childFd]) {
      if (fd === null) continue;
      try {
        closeSync(fd);
      } catch (error) {
        debug('closing fd %d: %s', fd, (error as Error).message);
      }
    }
    this.#childFd = null;
    if (this.#ownedDir !== null) rmSync(this.#ownedDir, { recursive: true, force: true });
    debug('closed %s', formatJobserverAuth(this.auth));
  }

  #writeBackQuietly(byte: number): void {
    try {
      writeTokenByte(this.#fd, byte);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // The pool is gone (EPIPE, ENOTCONN/ENODEV from a dead FUSE/CUSE
      // server) or already closed (EBADF): nothing to return it to.
      if (code !== 'EPIPE' && code !== 'EBADF' && code !== 'ENOTCONN' && code !== 'ENODEV') {
        debug('returning a token failed: %s', (error as Error).message);
      }
    }
  }

  #style(requested: ChildStyle | undefined): ChildStyle {
    const style = requested ?? (this.auth.kind === 'fifo' ? 'fifo' : 'pipe');
    if (style === 'fifo' && this.auth.kind === 'pipe') {
      throw new InvalidArgumentError(
        'fifo style needs a pool path; this jobserver is an inherited pipe: use style "pipe"',
      );
    }
    return style;
  }

  #checkUsable(): void {
    if (this.#closed) throw new JobserverClosedError();
    if (this.#broken !== null) throw this.#broken;
  }

  #read(): number | 'again' {
    try {
      return readTokenByte(this.#fd, this.path);
    } catch (error) {
      if (error instanceof JobserverGoneError) this.#fail(error);
      throw error;
    }
  }

  #implicit(): Token {
    this.#implicitToken = new Token(null, this.#releaseToken);
    return this.#implicitToken;
  }

  #explicit(byte: number): Token {
    const token = new Token(byte, this.#releaseToken);
    this.#held.add(token);
    return token;
  }

  #fail(error: JobserverGoneError): void {
    this.#broken = error;
    this.#readiness.stop();
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
  }

  // Readable (native) or time to try again (fallback): serve waiters in order.
  #onReadable(): void {
    if (this.#closed || this.#broken !== null) return;
    let served = false;
    while (this.#waiters.length > 0) {
      let byte: number | 'again';
      try {
        byte = this.#read();
      } catch {
        return; // #fail rejected every waiter
      }
      if (byte === 'again') break; // someone else was faster: wait again
      served = true;
      this.#deliver(this.#waiters.shift() as Waiter, this.#explicit(byte));
    }
    if (this.#waiters.length === 0) {
      this.#readiness.stop();
    } else {
      if (served) this.#readiness.stop(); // fallback: start over from the shortest delay
      this.#readiness.start();
    }
  }

  #deliver(waiter: Waiter, token: Token): void {
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(token);
  }

  readonly #releaseToken = (token: Token): void => {
    if (this.#closed) return; // close() returned it already
    if (token.implicit) {
      const next = this.#waiters.shift();
      if (next !== undefined) {
        if (this.#waiters.length === 0) this.#readiness.stop();
        this.#deliver(next, this.#implicit());
      } else {
        this.#implicitToken = null;
        this.#implicitFree = true;
      }
      return;
    }
    this.#held.delete(token);
    if (this.#broken !== null) {
      // The server is gone: there is nothing to return the token to.
      this.#writeBackQuietly(token.byte as number);
      return;
    }
    writeTokenByte(this.#fd, token.byte as number);
  };
}

/** mkfifo(3): the native helper when built, else coreutils' mkfifo. */
function makeFifo(path: string): void {
  const native = nativeHelper();
  if (native !== null) {
    native.mkfifo(path, 0o600);
    return;
  }
  const result = spawnSync('mkfifo', ['-m', '600', path], { encoding: 'utf8' });
  if (result.error !== undefined) throw result.error;
  if (result.status !== 0) {
    throw new Error(`mkfifo ${path} failed: ${result.stderr.trim() || `status ${result.status}`}`);
  }
}
