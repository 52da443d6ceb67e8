package io.connguard.core.auth;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** When a pooled client is asked for a password, when the database verifies it, what is remembered. */
class PoolAuthTest {

    @Test
    void untilTheFirstLoginEveryClientIsVerifiedByTheDatabase() {
        PoolAuth auth = new PoolAuth(null, "app");
        assertThat(auth.unknown()).isTrue();
        assertThat(auth.askClient()).as("nothing is asked before the database asks").isFalse();
        assertThat(auth.check("anything".toCharArray())).isEqualTo(PoolAuth.Verdict.VERIFY_WITH_SERVER);
    }

    @Test
    void trustMeansNoPasswordIsAskedLater() {
        PoolAuth auth = new PoolAuth(null, "app");
        auth.loginSucceeded(false, null);
        assertThat(auth.unknown()).isFalse();
        assertThat(auth.askClient()).isFalse();
        assertThat(auth.need()).isEqualTo(PoolAuth.Need.NONE);
    }

    @Test
    void anAcceptedPasswordAdmitsTheSamePasswordAndSendsAnyOtherToTheDatabase() {
        PoolAuth auth = new PoolAuth(null, "app");
        auth.loginSucceeded(true, "s3cret".toCharArray());
        assertThat(auth.askClient()).isTrue();
        assertThat(auth.check("s3cret".toCharArray())).isEqualTo(PoolAuth.Verdict.ACCEPTED);
        assertThat(auth.check("wrong".toCharArray())).isEqualTo(PoolAuth.Verdict.VERIFY_WITH_SERVER);
        auth.loginSucceeded(true, "changed".toCharArray());
        assertThat(auth.check("changed".toCharArray())).as("a changed password replaces the old")
                .isEqualTo(PoolAuth.Verdict.ACCEPTED);
        assertThat(auth.check("s3cret".toCharArray())).isEqualTo(PoolAuth.Verdict.VERIFY_WITH_SERVER);
    }

    @Test
    void aRefusedServerLoginForgetsTheRememberedPassword() {
        PoolAuth auth = new PoolAuth(null, "app");
        auth.loginSucceeded(true, "s3cret".toCharArray());
        auth.loginRefused("other".toCharArray());
        assertThat(auth.check("s3cret".toCharArray())).as("another password's failure changes nothing")
                .isEqualTo(PoolAuth.Verdict.ACCEPTED);
        auth.loginRefused("s3cret".toCharArray());
        assertThat(auth.check("s3cret".toCharArray())).isEqualTo(PoolAuth.Verdict.VERIFY_WITH_SERVER);
        assertThat(auth.askClient()).as("the database still wants a password").isTrue();
    }

    @Test
    void theUsersFileDecidesForTheUsersItLists(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("userlist.txt");
        Files.writeString(file, "\"app\" \"fromfile\"\n");
        try (UsersDirectory users = new UsersDirectory(file)) {
            PoolAuth listed = new PoolAuth(users, "app");
            assertThat(listed.askClient()).isTrue();
            assertThat(listed.unknown()).isFalse();
            assertThat(listed.check("fromfile".toCharArray())).isEqualTo(PoolAuth.Verdict.ACCEPTED);
            assertThat(listed.check("nope".toCharArray())).isEqualTo(PoolAuth.Verdict.REJECTED);
            assertThat(new String(listed.serverPassword("client".toCharArray()))).isEqualTo("fromfile");
            PoolAuth unlisted = new PoolAuth(users, "other");
            assertThat(unlisted.unknown()).as("a user the file does not list is passed through").isTrue();
            assertThat(new String(unlisted.serverPassword("client".toCharArray()))).isEqualTo("client");
            Files.writeString(file, "\"app\" \"rotated\"\n");
            users.reread();
            assertThat(listed.check("rotated".toCharArray())).isEqualTo(PoolAuth.Verdict.ACCEPTED);
            Files.writeString(file, "not valid\n");
            users.reread();
            assertThat(listed.check("rotated".toCharArray())).as("an invalid file keeps the last good users")
                    .isEqualTo(PoolAuth.Verdict.ACCEPTED);
        }
    }

    @Test
    void theRememberedFormIsSaltedPerEntry() {
        RememberedPassword a = new RememberedPassword();
        a.remember("same".toCharArray());
        assertThat(a.matches("same".toCharArray())).isTrue();
        assertThat(a.matches("Same".toCharArray())).isFalse();
        a.forget();
        assertThat(a.isEmpty()).isTrue();
        assertThat(a.matches("same".toCharArray())).isFalse();
    }
}
