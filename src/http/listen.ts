import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

/** A listening HTTP server: the port it bound (the one asked for, or a free one for 0) and its close. */
export interface Listening {
  port: number;
  /** Stops accepting connections and ends the open ones. */
  close(): Promise<void>;
}

/** Starts `app` on host:port; rejects when the port cannot be bound (in use, not permitted). */
export async function listen(app: Express, host: string, port: number): Promise<Listening> {
  const server = await new Promise<ReturnType<typeof app.listen>>((resolve, reject) => {
    const listening = app.listen(port, host, (error?: Error) => {
      if (error === undefined) resolve(listening);
      else reject(error);
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
