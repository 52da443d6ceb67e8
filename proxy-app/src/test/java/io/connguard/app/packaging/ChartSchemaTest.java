package io.connguard.app.packaging;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * values.schema.json (and the chart's own checks) turn away values that would give connguard a
 * configuration it refuses, before anything reaches a cluster. Each row: values, a word of the error.
 */
class ChartSchemaTest {

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            config: { shutdown: { drainTimeout: 25 } }                                   | drainTimeout
            config: { shutdown: { drainTimeout: 1m30s } }                                | drainTimeout
            config: { clients: { defaults: { idleInTransactionTimeout: "1 minute" } } } | idleInTransactionTimeout
            config: { clients: { defaults: { maxConnections: -1 } } }                   | maxConnections
            config: { clients: { defaults: { maxConnection: 5 } } }                     | maxConnection
            config: { clients: { identity: [ user, host ] } }                           | identity
            config: { clients: { identity: [ user, user ] } }                           | identity
            config: { clients: { identity: [] } }                                       | identity
            config: { clients: { maxTrackedClients: 0 } }                               | maxTrackedClients
            config: { clients: { rules: [ { maxConnections: 5 } ] } }                   | match
            config: { clients: { rules: [ { match: { host: x } } ] } }                  | host
            config: { admin: { listen: "0.0.0.0:9633", token: secret } }                | token
            config: { admin: { listen: "9633" } }                                        | listen
            config: { listeners: [] }                                                    | listeners
            config: { listeners: [ { name: a, protocol: oracle, listen: "127.0.0.1:1", upstream: "db:1" } ] }        | protocol
            config: { listeners: [ { name: a, protocol: mysql, listen: "127.0.0.1:1" } ] }                           | upstream
            config: { listeners: [ { name: a, protocol: mysql, listen: "127.0.0.1:1", upstream: "db:1", connectTimeout: 0 } ] } | connectTimeout
            config: { listeners: [ { name: a, protocol: mysql, listen: "127.0.0.1:1", upstream: "db:1", upstreamTls: { mode: verify-full } } ] } | caFile
            config: { listeners: [ { name: a, protocol: mysql, listen: "127.0.0.1:1", upstream: "db:1", clientTls: { mode: verify-ca } } ] }    | mode
            config: { listeners: [ { name: a, protocol: mysql, listen: "127.0.0.1:1", upstream: "db:1" }, { name: a, protocol: mysql, listen: "127.0.0.1:2", upstream: "db:1" } ] } | duplicate listener name
            config: { listeners: [ { name: a, protocol: mysql, listen: "127.0.0.1:1", upstream: "db:1" }, { name: b, protocol: mysql, listen: "127.0.0.1:1", upstream: "db:1" } ] } | duplicate listen address
            config: { listeners: [ { name: a, protocol: postgres, listen: "127.0.0.1:1", upstream: "db:1", clientTls: { mode: verify-full } } ] } | mode
            config: { listeners: [ { name: a, protocol: postgres, listen: "127.0.0.1:1", upstream: "db:1", clientTls: { mode: allow, certFile: /tls/tls.crt } } ] } | keyFile
            clientTls: { existingSecret: pg-tls, mountPath: etc/tls }                   | mountPath
            clientTls: { secretName: pg-tls }                                            | secretName
            config: { logging: { level: verbose } }                                      | level
            config: { logging: { format: xml } }                                         | format
            config: { unknown: 1 }                                                       | unknown
            sidecar: { native: "yes" }                                                   | native
            sidecar: { preStopSleepSeconds: -1 }                                         | preStopSleepSeconds
            sidecar: { probes: { startup: { periodSeconds: 0 } } }                       | periodSeconds
            terminationGracePeriodSeconds: 0                                             | terminationGracePeriodSeconds
            image: { digest: latest }                                                    | digest
            image: { repository: "" }                                                    | repository
            metrics: { podMonitor: { enabled: true, interval: soon } }                   | interval
            rollOnConfigChange: "no"                                                     | rollOnConfigChange
            replicas: 2                                                                  | replicas
            """)
    void rejects(String values, String mentioned) {
        assertThat(HelmChart.renderError(values)).contains(mentioned);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            config: { shutdown: { minDrainDelay: 0, drainTimeout: 2d } }
            config: { clients: { defaults: { idleTimeout: 250ms, maxSessionLifetime: 1h } } }
            config: { admin: { listen: "[::]:9633" } }
            config: { clients: { identity: [ address ], rules: [ { match: { address: 10.0.0.0/8 }, maxConnections: 0 } ] } }
            terminationGracePeriodSeconds: null
            config: { listeners: [ { name: a, protocol: postgres, listen: "127.0.0.1:1", upstream: "db:1", clientTls: { mode: require } } ] }
            """)
    void accepts(String values) throws Exception {
        Rendered r = HelmChart.render(values);
        assertThat(r.loadConfig()).isNotNull();
    }
}
