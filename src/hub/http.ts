/**
 * Requests to the hub: auth and user-agent headers, timeouts, and translation of HTTP and network failures into
 * `HubError`s that say what to do next.
 */
import { HubApiError } from '@huggingface/hub';
import { HubError } from '../errors.js';
import type { HubSettings } from './options.js';

const USER_AGENT = `peft-ts; node/${process.versions.node}`;

const NETWORK_CODES = /^(ECONNREFUSED|ECONNRESET|ECONNABORTED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENETDOWN|UND_ERR_[A-Z_]+)$/;

/** A failure to reach the server at all (DNS, refused connection, reset, timeout) as opposed to an HTTP answer. */
export function isNetworkError(err: unknown): boolean {
  if (err instanceof HubError || err instanceof HubApiError) return false;
  if (err instanceof Error) {
    if (err.name === 'AbortError' || err.name === 'TimeoutError') return true;
    if (err instanceof TypeError && /fetch failed|terminated|network|socket/i.test(err.message)) return true;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.test(code)) return true;
    return err.cause !== undefined && isNetworkError(err.cause);
  }
  return false;
}

export class HubClient {
  /** Requests sent, for callers that want to know whether the network was touched. */
  requestCount = 0;
  /** `X-Error-Code` of the last failed response (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo). */
  lastErrorCode: string | undefined;

  constructor(private readonly settings: HubSettings) {}

  /** fetch with hub headers; the token is only sent to the hub's own origin (never to a CDN redirect target). */
  readonly fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    const headers = new Headers(init.headers);
    headers.set('user-agent', USER_AGENT);
    if (this.settings.token && url.origin === new URL(this.settings.endpoint).origin) {
      headers.set('authorization', `Bearer ${this.settings.token}`);
    }
    this.requestCount++;
    const res = await this.settings.fetch(url, {
      ...init,
      headers,
      signal: init.signal ?? AbortSignal.timeout(this.settings.metadataTimeoutMs),
    });
    if (!res.ok && res.status >= 400) this.lastErrorCode = res.headers.get('x-error-code') ?? undefined;
    return res;
  };

  /** `${endpoint}/${repoId}/resolve/${revision}/${file}` with each part URL-encoded as huggingface_hub does. */
  resolveUrl(repoId: string, revision: string, file: string): string {
    const path = file.split('/').map(encodeURIComponent).join('/');
    return `${this.settings.endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${path}`;
  }
}

export interface FailureContext {
  readonly repoId: string;
  readonly revision: string;
  readonly endpoint: string;
  readonly file?: string;
  readonly errorCode?: string;
}

/** Turns an HTTP status into a HubError that names the repo/revision/file and the fix. */
export function httpError(status: number, ctx: FailureContext, serverMessage?: string, cause?: unknown): HubError {
  const what = ctx.file ? `"${ctx.file}" in ${ctx.repoId}@${ctx.revision}` : `${ctx.repoId}@${ctx.revision}`;
  const detail = serverMessage ? ` Server said: ${serverMessage}` : '';
  let message: string;
  if (status === 401 || status === 403) {
    const gated = ctx.errorCode === 'GatedRepo' ? ' The repo is gated: accept its terms on the model page first.' : '';
    message =
      `${status === 401 ? 'Unauthorized (401)' : 'Forbidden (403)'} fetching ${what} from ${ctx.endpoint}: the repo is ` +
      `private, gated, or does not exist (the hub answers 401 for unknown repos).${gated} Set HF_TOKEN (or pass ` +
      `{ token }) to a token with read access, and check the repo id.`;
  } else if (status === 404) {
    if (ctx.errorCode === 'RevisionNotFound') message = `Revision "${ctx.revision}" not found in ${ctx.repoId}.`;
    else if (ctx.errorCode === 'EntryNotFound' && ctx.file) message = `File "${ctx.file}" not found in ${ctx.repoId}@${ctx.revision}.`;
    else message = `Not found (404): repository "${ctx.repoId}" or revision "${ctx.revision}" does not exist on ${ctx.endpoint}.`;
  } else {
    message = `Hub request for ${what} failed with HTTP ${status}.`;
  }
  return new HubError(ctx.repoId, message + detail, { status, cause });
}

/** Maps anything thrown while talking to the hub to a HubError (already-mapped errors pass through). */
export function toHubError(err: unknown, ctx: FailureContext): HubError {
  if (err instanceof HubError) return err;
  if (err instanceof HubApiError) return httpError(err.statusCode, ctx, err.message.split('. URL:')[0], err);
  if (isNetworkError(err)) {
    const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    return new HubError(
      ctx.repoId,
      `Could not reach ${ctx.endpoint} to fetch ${ctx.repoId}@${ctx.revision} (${reason}) and it is not in the ` +
        'cache. If you are offline, download it once while online, or point at a local folder; set ' +
        'HF_HUB_OFFLINE=1 (or pass { localFilesOnly: true }) to use only cached files.',
      { cause: err },
    );
  }
  return new HubError(ctx.repoId, `Fetching ${ctx.repoId}@${ctx.revision} failed: ${String(err)}`, { cause: err });
}
