// Mints an inboxmq access token with the JDK only (docs/clients.md), as a
// Java back-end would. Run by examples/examples_test.go when a JDK is present:
//
//   INBOXMQ_JWT_SECRET=... java MintToken.java UID [NICKNAME]
import static java.nio.charset.StandardCharsets.UTF_8;

import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class MintToken {
    static String mintToken(String secret, String uid, String nickname, long ttlSeconds) throws Exception {
        Base64.Encoder b64 = Base64.getUrlEncoder().withoutPadding();
        long now = System.currentTimeMillis() / 1000;
        String header = b64.encodeToString("{\"alg\":\"HS256\",\"typ\":\"JWT\"}".getBytes(UTF_8));
        String claims = String.format("{\"sub\":%s,\"iat\":%d,\"exp\":%d,\"nickname\":%s}",
                jsonString(uid), now, now + ttlSeconds, jsonString(nickname));
        String body = header + "." + b64.encodeToString(claims.getBytes(UTF_8));
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret.getBytes(UTF_8), "HmacSHA256"));
        return body + "." + b64.encodeToString(mac.doFinal(body.getBytes(UTF_8)));
    }

    // jsonString quotes s as a JSON string (a JSON library does this in a real back-end).
    static String jsonString(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        String secret = System.getenv("INBOXMQ_JWT_SECRET");
        if (secret == null || secret.isEmpty() || args.length < 1) {
            System.err.println("usage: INBOXMQ_JWT_SECRET=... java MintToken.java UID [NICKNAME]");
            System.exit(2);
        }
        System.out.println(mintToken(secret, args[0], args.length > 1 ? args[1] : "", 3600));
    }
}
