import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Router } from 'express';
import { redactJobData } from '../../domain/redact.ts';
import type { Logger } from '../../observability/logger.ts';
import type { QueueAdmin } from './queue-admin.ts';

/** How old the list of queues may get before a request looks again (a new worker's node queue). */
const DISCOVERY_MS = 5_000;

type Board = ReturnType<typeof createBullBoard>;

/**
 * bull-board over every ctfleet queue under one prefix, twice: a full board and a
 * read-only one, both served from `basePath`; the caller picks one per request.
 * Job data is shown with env values, args and command hidden. Queues are found
 * in Redis, as the CLI finds them, and looked for again by a request that finds
 * the list older than a few seconds.
 */
export class QueueBoard {
  readonly full: Router;
  readonly readOnly: Router;
  private readonly admin: QueueAdmin;
  private readonly boards: { board: Board; readOnlyMode: boolean }[] = [];
  private readonly logger: Logger;
  private known = '';
  private discovered: { at: number; pending: Promise<void> } | undefined;

  /** `admin` finds the queues and opens them; closing it is the caller's. */
  constructor(admin: QueueAdmin, basePath: string, title: string, logger: Logger) {
    this.admin = admin;
    this.logger = logger;
    const make = (readOnlyMode: boolean): Router => {
      const server = new ExpressAdapter();
      server.setBasePath(basePath);
      const board = createBullBoard({
        queues: [],
        serverAdapter: server,
        options: {
          uiConfig: {
            boardTitle: title,
            miscLinks: [{ text: 'Instances', url: basePath.replace(/\/queues$/, '/') }],
            ...(readOnlyMode ? { environment: { label: 'read-only', color: '#e3e6ea', textColor: '#3d4452' } } : {}),
          },
        },
      });
      this.boards.push({ board, readOnlyMode });
      const router = server.getRouter() as Router;
      return ((request, response, next) => {
        void this.fresh().then(() => {
          router(request, response, next);
        });
      }) as Router;
    };
    this.full = make(false);
    this.readOnly = make(true);
  }

  /** Looks for queues unless that was done moments ago (or is under way). */
  private fresh(): Promise<void> {
    if (this.discovered === undefined || Date.now() - this.discovered.at > DISCOVERY_MS) {
      this.discovered = { at: Date.now(), pending: this.discover() };
    }
    return this.discovered.pending;
  }

  private async discover(): Promise<void> {
    try {
      const names = await this.admin.queueNames();
      if (names.join('\n') === this.known) return;
      this.known = names.join('\n');
      for (const { board, readOnlyMode } of this.boards) {
        board.replaceQueues(names.map((name) => {
          const adapter = new BullMQAdapter(this.admin.queue(name), { readOnlyMode });
          adapter.setFormatter('data', redactJobData);
          return adapter;
        }));
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'Looking for queues failed; the dashboard shows the last ones found');
    }
  }
}
