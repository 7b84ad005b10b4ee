/** An error a user can fix: what happened, and the command that fixes it. */
export class PytestBridgeError extends Error {
  override readonly name = 'PytestBridgeError';
  constructor(
    message: string,
    /** What to do about it (`apt-get install python3-pip`). */
    readonly hint: string,
  ) {
    super(`${message}; ${hint}`);
  }
}
