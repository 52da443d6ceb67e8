package io.connguard.core.auth;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class UsersFileTest {

    @Test
    void readsPgBouncerUserlistLines() throws Exception {
        Map<String, String> users = UsersFile.parse("""
                ; comment
                # another
                "app" "s3cret"

                "quote""d" "pa ss""word" trailing text ignored
                  "spaced"   "x"
                """);
        assertThat(users).containsOnly(Map.entry("app", "s3cret"), Map.entry("quote\"d", "pa ss\"word"),
                Map.entry("spaced", "x"));
    }

    @Test
    void malformedLinesAreNamedByNumberOnly() {
        assertThatThrownBy(() -> UsersFile.parse("\"app\" \"s3cret\"\n\"bob\" \"unterminated\n"))
                .hasMessage("line 2: expected \"user\" \"password\"")
                .hasMessageNotContaining("unterminated");
        assertThatThrownBy(() -> UsersFile.parse("app s3cret\n")).hasMessage("line 1: expected \"user\" \"password\"");
        assertThatThrownBy(() -> UsersFile.parse("\"app\"\n")).hasMessage("line 1: expected \"user\" \"password\"");
        assertThatThrownBy(() -> UsersFile.parse("\"\" \"x\"\n")).hasMessage("line 1: empty user name");
        assertThatThrownBy(() -> UsersFile.parse("\"a\" \"x\"\n\"a\" \"y\"\n")).hasMessage("line 2: user 'a' is listed twice");
    }

    @Test
    void hashedPasswordsAreRefused() {
        assertThatThrownBy(() -> UsersFile.parse("\"a\" \"SCRAM-SHA-256$4096:c2FsdA==$aaa:bbb\"\n"))
                .hasMessageContaining("line 1: a hashed password").hasMessageNotContaining("c2FsdA");
    }
}
