package io.connguard.app;

import io.connguard.core.Version;
import io.connguard.core.api.ProtocolModule;
import io.connguard.core.config.ConfigError;
import io.connguard.core.config.ConfigException;
import io.connguard.core.config.ProxyConfig;
import io.connguard.core.lifecycle.Signals;
import io.connguard.core.logging.Logging;
import io.connguard.core.server.ProtocolModules;
import io.connguard.core.server.ProxyServer;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Function;

/**
 * The command line: {@code --config FILE} (or {@code CONNGUARD_CONFIG}) runs the proxy, {@code --check}
 * validates the file and prints every error, {@code --version} prints the version.
 * Exit codes: 0 after a clean drain or a valid check, 1 configuration error, 2 a listener or the admin
 * endpoint could not bind, 143 / 130 a second SIGTERM / SIGINT during the drain.
 */
public final class Main {

    static final int OK = 0;
    static final int CONFIG_ERROR = 1;
    static final int BIND_ERROR = 2;

    private static final String USAGE = """
            usage: connguard --config FILE [--check]
                   connguard --version
              --config FILE   the YAML configuration (or set CONNGUARD_CONFIG)
              --check         validate the configuration, print every error, exit 0 or 1
              --version       print the version
            """;

    private Main() {
    }

    public static void main(String[] args) {
        // Before any Netty class loads: the leak detector off, smaller allocator chunks, no JFR events.
        RuntimeDefaults.apply(System.getProperties());
        System.exit(run(args, System::getenv, System.out, System.err));
    }

    static int run(String[] args, Function<String, String> environment, PrintStream out, PrintStream err) {
        String configFile = null;
        boolean check = false;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            switch (arg) {
                case "--version", "-v" -> {
                    out.println("connguard " + Version.get());
                    return OK;
                }
                case "--help", "-h" -> {
                    out.print(USAGE);
                    return OK;
                }
                case "--check" -> check = true;
                case "--config", "-c" -> {
                    if (i + 1 >= args.length) {
                        err.println("connguard: --config needs a file");
                        err.print(USAGE);
                        return CONFIG_ERROR;
                    }
                    configFile = args[++i];
                }
                default -> {
                    if (arg.startsWith("--config=")) {
                        configFile = arg.substring("--config=".length());
                    } else {
                        err.println("connguard: unknown argument " + arg);
                        err.print(USAGE);
                        return CONFIG_ERROR;
                    }
                }
            }
        }
        if (configFile == null) {
            configFile = environment.apply("CONNGUARD_CONFIG");
        }
        if (configFile == null || configFile.isBlank()) {
            err.println("connguard: no configuration: pass --config FILE or set CONNGUARD_CONFIG");
            err.print(USAGE);
            return CONFIG_ERROR;
        }
        Path file = Path.of(configFile);
        Map<String, ProtocolModule> modules = ProtocolModules.load();
        ProxyConfig config;
        try {
            config = ProtocolModules.configLoader(environment, modules).load(file);
        } catch (ConfigException e) {
            err.println("connguard: " + file + ": configuration is invalid (" + e.errors().size() + " error"
                    + (e.errors().size() == 1 ? "" : "s") + "):");
            for (ConfigError error : e.errors()) {
                err.println("  " + error);
            }
            return CONFIG_ERROR;
        }
        if (check) {
            out.println("connguard: " + file + ": configuration is valid (" + config.listeners().size()
                    + " listener" + (config.listeners().size() == 1 ? "" : "s") + ")");
            return OK;
        }
        Logging.configure(config.logging());
        ProxyServer server;
        try {
            server = ProxyServer.start(config, new ProxyServer.Options(file, environment, modules, 0));
        } catch (ProxyServer.BindException e) {
            err.println("connguard: " + e.getMessage());
            return BIND_ERROR;
        } catch (ConfigException e) {
            err.println("connguard: " + file + ": " + e.getMessage());
            return CONFIG_ERROR;
        }
        Signals.install(server);
        int exitCode = server.terminated().join();
        Logging.shutdown();
        return exitCode;
    }
}
