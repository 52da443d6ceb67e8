package io.connguard.mysql;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

/** A kept password proof checks mysql_native_password and caching_sha2_password answers, and nothing else. */
class MySqlPasswordProofTest {

    private static final byte[] SCRAMBLE = "abcdefghij0123456789".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] OTHER_SCRAMBLE = "ABCDEFGHIJ0123456789".getBytes(StandardCharsets.US_ASCII);

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void provesTheSamePasswordForBothPluginsAndNoOther() {
        MySqlPasswordProof proof = MySqlPasswordProof.of(utf8("s\u00e9cret"));
        assertThat(proof.proves(MySqlAuthPlugins.NATIVE, MySqlAuthPlugins.nativePassword(utf8("s\u00e9cret"), SCRAMBLE), SCRAMBLE)).isTrue();
        assertThat(proof.proves(MySqlAuthPlugins.CACHING_SHA2, MySqlAuthPlugins.cachingSha2(utf8("s\u00e9cret"), SCRAMBLE), SCRAMBLE)).isTrue();
        assertThat(proof.proves(MySqlAuthPlugins.NATIVE, MySqlAuthPlugins.nativePassword(utf8("secret"), SCRAMBLE), SCRAMBLE)).isFalse();
        assertThat(proof.proves(MySqlAuthPlugins.CACHING_SHA2, MySqlAuthPlugins.cachingSha2(utf8("wrong"), SCRAMBLE), SCRAMBLE)).isFalse();
        assertThat(proof.proves(MySqlAuthPlugins.NATIVE, MySqlAuthPlugins.nativePassword(utf8("s\u00e9cret"), OTHER_SCRAMBLE), SCRAMBLE))
                .as("an answer to another scramble").isFalse();
        assertThat(proof.proves(MySqlAuthPlugins.NATIVE, new byte[0], SCRAMBLE)).as("an empty answer").isFalse();
        assertThat(proof.proves(MySqlAuthPlugins.NATIVE, new byte[19], SCRAMBLE)).isFalse();
        assertThat(proof.proves(MySqlAuthPlugins.ED25519, new byte[64], SCRAMBLE)).isFalse();
        assertThat(proof.proves("mysql_clear_password", utf8("s\u00e9cret\0"), SCRAMBLE)).as("never a cleartext answer").isFalse();
        assertThat(proof.matches(utf8("s\u00e9cret"))).isTrue();
        assertThat(proof.matches(utf8("secret"))).isFalse();
    }

    @Test
    void anEmptyPasswordIsProvenByAnEmptyAnswerOnly() {
        MySqlPasswordProof empty = MySqlPasswordProof.of(new byte[0]);
        assertThat(empty.proves(MySqlAuthPlugins.NATIVE, new byte[0], SCRAMBLE)).isTrue();
        assertThat(empty.proves(MySqlAuthPlugins.CACHING_SHA2, new byte[0], SCRAMBLE)).isTrue();
        assertThat(empty.proves(MySqlAuthPlugins.NATIVE, MySqlAuthPlugins.nativePassword(utf8("x"), SCRAMBLE), SCRAMBLE)).isFalse();
        assertThat(empty.matches(new byte[0])).isTrue();
    }

    @Test
    void aModuleForgetsTheProofWhenALoginWithThatPasswordIsRefused() {
        MySqlModule module = new MySqlModule();
        String key = MySqlModule.poolKey("my", "cg_my_pool", "test");
        module.accepted(key, utf8("one"));
        module.refused(key, utf8("two"));
        assertThat(module.proof(key)).as("another password was refused").isNotNull();
        module.refused(key, utf8("one"));
        assertThat(module.proof(key)).isNull();
    }
}
