package io.connguard.core.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.connguard.core.config.ConfigException;
import io.connguard.core.config.ProxyConfig;
import io.connguard.core.lifecycle.ReloadResult;
import io.connguard.core.server.ProtocolModules;
import io.connguard.core.server.ProxyServer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/**
 * An in-process connguard for integration tests, started from YAML. Listeners should use
 * {@code listen: 127.0.0.1:0}; when the YAML has no {@code admin} section the admin endpoint gets an
 * ephemeral port too. The YAML is written to a temporary file, so {@link #reload(String)} exercises the
 * real reload path.
 */
public final class TestProxy implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final ProxyServer server;
    private final Path file;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private TestProxy(ProxyServer server, Path file) {
        this.server = server;
        this.file = file;
    }

    public static TestProxy start(String yaml) {
        return start(yaml, Map.of());
    }

    public static TestProxy start(String yaml, Map<String, String> environment) {
        try {
            Path file = Files.createTempFile("connguard-test", ".yaml");
            Files.writeString(file, withAdmin(yaml));
            Map<String, String> env = new HashMap<>(System.getenv());
            env.putAll(environment);
            var modules = ProtocolModules.load();
            ProxyConfig config = ProtocolModules.configLoader(env::get, modules).load(file);
            ProxyServer server = ProxyServer.start(config,
                    new ProxyServer.Options(file, env::get, modules, 2));
            return new TestProxy(server, file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (ConfigException | ProxyServer.BindException e) {
            throw new IllegalStateException("test proxy did not start: " + e.getMessage(), e);
        }
    }

    private static String withAdmin(String yaml) {
        return yaml.contains("admin:") ? yaml : "admin:\n  listen: 127.0.0.1:0\n" + yaml;
    }

    public ProxyServer server() {
        return server;
    }

    public int port(String listener) {
        return server.port(listener);
    }

    public String adminUrl() {
        return "http://127.0.0.1:" + server.adminAddress().getPort();
    }

    /** Rewrites the configuration file and reloads it through the same path as SIGHUP and POST /reload. */
    public ReloadResult reload(String yaml) {
        try {
            Files.writeString(file, withAdmin(yaml));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return server.reload();
    }

    public Path configFile() {
        return file;
    }

    public HttpResponse<String> request(String method, String path, String token) {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(adminUrl() + path))
                .timeout(Duration.ofSeconds(10))
                .method(method, HttpRequest.BodyPublishers.noBody());
        if (token != null) {
            request.header("Authorization", "Bearer " + token);
        }
        try {
            return http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    public HttpResponse<String> get(String path) {
        return request("GET", path, null);
    }

    public JsonNode sessions() {
        return json(get("/sessions"));
    }

    public JsonNode clients() {
        return json(get("/clients"));
    }

    public String metrics() {
        return get("/metrics").body();
    }

    /** {@code GET /metrics}, parsed. */
    public PrometheusScrape scrape() {
        var response = get("/metrics");
        if (response.statusCode() != 200) {
            throw new IllegalStateException("/metrics answered " + response.statusCode());
        }
        return PrometheusScrape.parse(response.body());
    }

    private static JsonNode json(HttpResponse<String> response) {
        if (response.statusCode() != 200) {
            throw new IllegalStateException("admin API answered " + response.statusCode() + ": " + response.body());
        }
        try {
            return JSON.readTree(response.body());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void close() {
        server.close();
        try {
            Files.deleteIfExists(file);
        } catch (IOException ignored) {
            // a temporary file; the OS cleans up
        }
    }
}
