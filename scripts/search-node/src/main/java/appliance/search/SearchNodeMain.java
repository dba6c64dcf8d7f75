package appliance.search;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

/**
 * Starts one OpenSearch node in this JVM and keeps it running until the JVM receives SIGTERM or
 * SIGINT.
 *
 * <p>Usage: {@code SearchNodeMain [--http-port N] [--transport-port N] [--data-dir PATH]}. An
 * option that is not given falls back to SEARCH_NODE_PORT (default 9200),
 * SEARCH_NODE_TRANSPORT_PORT (default HTTP port + 100) and SEARCH_NODE_DATA_DIR, which has no
 * default. Exits with status 1 when the node fails to start and 2 on invalid arguments.
 */
public final class SearchNodeMain {

    static final String CLUSTER_NAME = "appliance-search";
    static final String NODE_NAME = "appliance-search-0";
    private static final long CLOSE_TIMEOUT_SECONDS = 30;

    private SearchNodeMain() {}

    /**
     * Node with a fixed list of plugin classes loaded from the application classpath instead of
     * the plugins and modules folders of an OpenSearch distribution.
     */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment) {
            super(environment, List.of(Netty4Plugin.class, CommonAnalysisPlugin.class), true);
        }
    }

    record Options(int httpPort, int transportPort, Path dataDir) {}

    public static void main(String[] args) {
        Options options;
        try {
            options = parseOptions(args, System.getenv());
        } catch (IllegalArgumentException e) {
            System.err.println("search-node: " + e.getMessage());
            System.exit(2);
            return;
        }

        Path dataDir = options.dataDir().toAbsolutePath().normalize();
        Path logsDir = dataDir.resolve("logs");
        try {
            Files.createDirectories(logsDir);
            Files.createDirectories(dataDir.resolve("data"));
            Files.createDirectories(dataDir.resolve("config"));
        } catch (IOException e) {
            System.err.println("search-node: failed to create folders under " + dataDir + ": " + e);
            System.exit(1);
            return;
        }

        // log4j2.xml reads the log folder from this property, so it must be set before the first
        // logger is created.
        System.setProperty("search.node.logs", logsDir.toString());
        Logger logger = LogManager.getLogger(SearchNodeMain.class);

        Settings settings = nodeSettings(options.httpPort(), options.transportPort(), dataDir);
        Environment environment =
                InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), dataDir.resolve("config"), () -> NODE_NAME);

        Node node;
        try {
            node = new EmbeddedNode(environment);
        } catch (Exception e) {
            logger.error("failed to create node in data dir [{}]", dataDir, e);
            LogManager.shutdown();
            System.exit(1);
            return;
        }

        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> closeNode(node, logger, closed), "search-node-shutdown"));

        try {
            node.start();
        } catch (Exception e) {
            logger.error("failed to start node on http port [{}], transport port [{}]",
                    options.httpPort(), options.transportPort(), e);
            // System.exit runs the shutdown hook, which closes the half-started node.
            System.exit(1);
            return;
        }
        logger.info("node started: http://127.0.0.1:{} transport port {} data dir {}",
                options.httpPort(), options.transportPort(), dataDir);

        // The node's own threads are daemon threads, so this thread keeps the JVM alive until the
        // shutdown hook has closed the node.
        try {
            closed.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Builds the node settings. Every address is loopback, and nothing is read from opensearch.yml. */
    static Settings nodeSettings(int httpPort, int transportPort, Path dataDir) {
        return Settings.builder()
                .put("cluster.name", CLUSTER_NAME)
                .put("node.name", NODE_NAME)
                .put("discovery.type", "single-node")
                .put("network.host", "127.0.0.1")
                .put("http.port", httpPort)
                .put("transport.port", transportPort)
                .put("http.type", Netty4Plugin.NETTY_HTTP_TRANSPORT_NAME)
                .put("transport.type", Netty4Plugin.NETTY_TRANSPORT_NAME)
                .put("path.home", dataDir.toString())
                .put("path.data", dataDir.resolve("data").toString())
                .put("path.logs", dataDir.resolve("logs").toString())
                // With the disk threshold decider on, a disk above the flood stage watermark (95 %
                // by default) makes every index read-only. The appliance shares its disk with
                // other data, so the node never applies those blocks.
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .build();
    }

    static Options parseOptions(String[] args, Map<String, String> env) {
        String httpPort = env.get("SEARCH_NODE_PORT");
        String transportPort = env.get("SEARCH_NODE_TRANSPORT_PORT");
        String dataDir = env.get("SEARCH_NODE_DATA_DIR");

        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("missing value for option " + name);
            }
            String value = args[++i];
            switch (name) {
                case "--http-port" -> httpPort = value;
                case "--transport-port" -> transportPort = value;
                case "--data-dir" -> dataDir = value;
                default -> throw new IllegalArgumentException(
                        "unknown option " + name + "; expected --http-port, --transport-port or --data-dir");
            }
        }

        int http = isBlank(httpPort) ? 9200 : parsePort("HTTP port", httpPort);
        int transport = isBlank(transportPort) ? http + 100 : parsePort("transport port", transportPort);
        if (http == transport) {
            throw new IllegalArgumentException("HTTP port and transport port are both " + http + "; give two different ports");
        }
        if (isBlank(dataDir)) {
            throw new IllegalArgumentException("missing data dir; pass --data-dir PATH or set SEARCH_NODE_DATA_DIR");
        }
        return new Options(http, transport, Path.of(dataDir));
    }

    private static int parsePort(String label, String value) {
        int port;
        try {
            port = Integer.parseInt(value.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("invalid " + label + " [" + value + "]; expected a number from 1 to 65535");
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("invalid " + label + " [" + value + "]; expected a number from 1 to 65535");
        }
        return port;
    }

    private static boolean isBlank(String value) {
        return value == null || value.isBlank();
    }

    /**
     * Closes the node from the shutdown hook. Log4j's own shutdown hook is off (see
     * search-node.sh), so logging still works here and is shut down last.
     */
    private static void closeNode(Node node, Logger logger, CountDownLatch closed) {
        logger.info("stopping node");
        try {
            node.close();
            if (node.awaitClose(CLOSE_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                logger.info("node stopped");
            } else {
                logger.warn("node did not stop within {} s; exiting anyway", CLOSE_TIMEOUT_SECONDS);
            }
        } catch (IOException e) {
            logger.error("failed to close node", e);
        } catch (InterruptedException e) {
            logger.warn("interrupted while waiting for the node to stop", e);
            Thread.currentThread().interrupt();
        } finally {
            closed.countDown();
            LogManager.shutdown();
        }
    }
}
