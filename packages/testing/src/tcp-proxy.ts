import net from "node:net";

/**
 * A TCP proxy a test controls, to take a dependency (the database, a peer service) away from a
 * service and give it back: {@link cut} destroys every open connection and stops listening (new
 * connections are refused, as by a server that is down), {@link restore} listens again on the same
 * port. Works for any protocol, so on both database engines.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();

  private constructor(
    private readonly target: { host: string; port: number },
    private boundPort: number,
  ) {}

  /** Starts a proxy to `target` on a free port of 127.0.0.1. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target, 0);
    await proxy.listen();
    return proxy;
  }

  /** A proxy in front of the server of a `postgres://` (or `http://`) URL, and that URL rewritten to go through it. */
  static async forUrl(url: string): Promise<{ proxy: TcpProxy; url: string }> {
    const parsed = new URL(url);
    const defaultPort = parsed.protocol.startsWith("postgres") ? 5432 : 80;
    const proxy = await TcpProxy.start({ host: parsed.hostname, port: Number(parsed.port || defaultPort) });
    parsed.hostname = "127.0.0.1";
    parsed.port = String(proxy.port);
    return { proxy, url: parsed.toString() };
  }

  /** The proxy's port. */
  get port(): number {
    return this.boundPort;
  }

  /** Whether it forwards (false between {@link cut} and {@link restore}). */
  get open(): boolean {
    return this.server !== undefined;
  }

  /** The local ports of the proxy's connections to the target (a server sees them as its clients' ports). */
  upstreamPorts(): number[] {
    return [...this.pairs].map((p) => p.upstream.localPort).filter((port): port is number => port !== undefined);
  }

  /** Destroys every open connection and refuses new ones until {@link restore}. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async restore(): Promise<void> {
    if (!this.server) await this.listen();
  }

  /** Stops for good. */
  async close(): Promise<void> {
    await this.cut();
  }

  private async listen(): Promise<void> {
    const server = net.createServer((client) => this.forward(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.boundPort, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  private forward(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
