import cliProgress from 'cli-progress';
import type { DownloadProgress } from './options.js';

/** Files smaller than this finish too fast for a bar to be worth the terminal noise. */
export const PROGRESS_BAR_MIN_BYTES = 10 * 1024 * 1024;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)}MiB`;
}

/** Reports one file's progress to the `onProgress` callback and, for large files on a TTY, a cli-progress bar. */
export class FileProgress {
  private bar: cliProgress.SingleBar | undefined;

  constructor(
    private readonly repoId: string,
    private readonly file: string,
    private readonly total: number | undefined,
    private readonly onProgress: ((p: DownloadProgress) => void) | undefined,
    showBar: boolean,
  ) {
    if (showBar && total !== undefined && total >= PROGRESS_BAR_MIN_BYTES) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${file} |{bar}| {percentage}% {done}/{size} {speed}`,
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
    }
  }

  private started = 0;
  private startBytes = 0;

  update(downloaded: number): void {
    this.onProgress?.({ repoId: this.repoId, file: this.file, downloadedBytes: downloaded, totalBytes: this.total });
    if (!this.bar) return;
    const payload = { done: mib(downloaded), size: mib(this.total ?? 0), speed: '' };
    if (!this.started) {
      this.started = Date.now();
      this.startBytes = downloaded;
      this.bar.start(this.total ?? 0, downloaded, payload);
      return;
    }
    const seconds = (Date.now() - this.started) / 1000;
    if (seconds > 0) payload.speed = `${mib((downloaded - this.startBytes) / seconds)}/s`;
    this.bar.update(downloaded, payload);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
