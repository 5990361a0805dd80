<?php
// Mints an inboxmq access token with PHP's defaults only (docs/clients.md),
// as a PHP back-end would. Run by examples/examples_test.go:
//
//   INBOXMQ_JWT_SECRET=... php mint_token.php UID [NICKNAME]

function mint_token(string $secret, string $uid, string $nickname = '', int $ttl = 3600): string {
    $b64 = fn(string $s) => rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
    $now = time();
    $body = $b64(json_encode(['alg' => 'HS256', 'typ' => 'JWT'])) . '.' .
            $b64(json_encode(['sub' => $uid, 'iat' => $now, 'exp' => $now + $ttl, 'nickname' => $nickname], JSON_UNESCAPED_UNICODE));
    return $body . '.' . $b64(hash_hmac('sha256', $body, $secret, true));
}

$secret = getenv('INBOXMQ_JWT_SECRET');
if ($secret === false || $secret === '' || $argc < 2) {
    fwrite(STDERR, "usage: INBOXMQ_JWT_SECRET=... php mint_token.php UID [NICKNAME]\n");
    exit(2);
}
echo mint_token($secret, $argv[1], $argv[2] ?? ''), "\n";
