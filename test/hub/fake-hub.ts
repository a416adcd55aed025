/**
 * A loopback stand-in for the Hugging Face hub, answering the requests peft-ts makes: model info
 * (`/api/models/:repo/revision/:rev`), HEAD/GET `/:repo/resolve/:rev/:file` (regular files answer with their git
 * blob sha1 as ETag; LFS files redirect to `/cdn/:sha256` with X-Linked-Etag/X-Linked-Size, as the hub does) and
 * byte ranges on the CDN. It records every request and can drop a connection midway or ignore Range.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  readonly id: string;
  /** Branch (and tag) name → commit. */
  readonly refs: Record<string, string>;
  /** Commit → files at that commit (path → bytes). */
  readonly commits: Record<string, Record<string, Buffer>>;
  /** Files served through the LFS redirect. Default: `*.safetensors`. */
  readonly isLfs?: (path: string) => boolean;
  /** Token that must be sent as `Authorization: Bearer ...`; the repo is public when unset. */
  readonly token?: string;
}

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly range: string | undefined;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const gitSha1 = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export class FakeHub {
  readonly requests: RecordedRequest[] = [];
  /** sha256 → number of bytes after which the next GET of that blob is cut off (once). */
  readonly dropAfter = new Map<string, number>();
  /** Answer this many CDN requests with 503 before serving again. */
  cdnFailures = 0;
  /** Answer 200 with the whole file even when a Range is asked for. */
  ignoreRange = false;
  private readonly blobs = new Map<string, Buffer>();

  private constructor(private readonly server: Server, readonly repos: Map<string, FakeRepo>) {}

  static async start(repos: readonly FakeRepo[]): Promise<FakeHub> {
    const server = createServer();
    const hub = new FakeHub(server, new Map(repos.map((r) => [r.id, r])));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => hub.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return hub;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private fail(res: ServerResponse, status: number, code: string | undefined, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', ...(code ? { 'x-error-code': code } : {}) });
    res.end(JSON.stringify({ error: message }));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const auth = req.headers.authorization;
    const range = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    this.requests.push({ method: req.method ?? 'GET', url: url.pathname, authorization: auth, range });
    const path = decodeURIComponent(url.pathname);
    if (path.startsWith('/cdn/') && this.cdnFailures > 0) {
      this.cdnFailures--;
      return this.fail(res, 503, undefined, 'overloaded');
    }
    if (path.startsWith('/cdn/')) return this.sendBlob(req, res, path.slice(5));
    const api = /^\/api\/models\/(.+)\/revision\/(.+)$/.exec(path);
    const resolve = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoId = api?.[1] ?? resolve?.[1];
    const repo = repoId ? this.repos.get(repoId) : undefined;
    if (!repo) return this.fail(res, 404, 'RepoNotFound', 'Repository not found');
    if (repo.token && auth !== `Bearer ${repo.token}`) return this.fail(res, 401, 'RepoNotFound', 'Invalid credentials');
    const rev = (api?.[2] ?? resolve?.[2])!;
    const commit = repo.commits[rev] ? rev : repo.refs[rev];
    const files = commit ? repo.commits[commit] : undefined;
    if (!commit || !files) return this.fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    if (api) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          _id: `id-${repo.id}`,
          id: repo.id,
          sha: commit,
          siblings: Object.keys(files).map((rfilename) => ({ rfilename })),
          private: Boolean(repo.token),
          gated: false,
          downloads: 0,
          likes: 0,
          lastModified: '2024-01-01T00:00:00.000Z',
        }),
      );
      return;
    }
    const file = resolve![3]!;
    const content = files[file];
    if (!content) return this.fail(res, 404, 'EntryNotFound', `${file} does not exist`);
    const lfs = (repo.isLfs ?? ((p: string) => p.endsWith('.safetensors')))(file);
    if (lfs) {
      const oid = sha256(content);
      this.blobs.set(oid, content);
      res.writeHead(302, {
        location: `${this.url}/cdn/${oid}`,
        'x-linked-etag': `"${oid}"`,
        'x-linked-size': String(content.length),
        'x-repo-commit': commit,
        etag: '"not-the-blob-etag"',
      });
      res.end();
      return;
    }
    this.blobs.set(gitSha1(content), content);
    this.sendBody(req, res, content, { etag: `"${gitSha1(content)}"`, 'x-repo-commit': commit }, undefined);
  }

  private sendBlob(req: IncomingMessage, res: ServerResponse, oid: string): void {
    const content = this.blobs.get(oid);
    if (!content) return this.fail(res, 404, undefined, 'no such blob');
    this.sendBody(req, res, content, { etag: `"${oid}"` }, oid);
  }

  private sendBody(req: IncomingMessage, res: ServerResponse, content: Buffer, headers: Record<string, string>, oid: string | undefined): void {
    let start = 0;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && !this.ignoreRange) {
      start = Number(m[1]);
      if (start >= content.length) {
        res.writeHead(416, { 'content-range': `bytes */${content.length}` });
        res.end();
        return;
      }
    }
    const end = m?.[2] && !this.ignoreRange ? Math.min(Number(m[2]) + 1, content.length) : content.length;
    const body = content.subarray(start, end);
    const partial = start > 0 || end < content.length;
    res.writeHead(partial ? 206 : 200, {
      ...headers,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
      'content-length': String(body.length),
      ...(partial ? { 'content-range': `bytes ${start}-${end - 1}/${content.length}` } : {}),
    });
    if (req.method === 'HEAD') return void res.end();
    const drop = oid ? this.dropAfter.get(oid) : undefined;
    if (drop !== undefined && drop < body.length) {
      this.dropAfter.delete(oid!);
      res.write(body.subarray(0, drop), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body);
  }
}
