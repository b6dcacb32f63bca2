package vars

// goldenTemplates are the templates whose expansion is recorded from a
// real Dovecot 2.3 in testdata/golden.json (see live_test.go for how).
// Each is placed in its own passdb's override_fields, so a template that
// makes Dovecot fail the expansion only drops its own field. Templates must
// not contain spaces (override_fields is space separated) nor '$' or '#'
// (the config parser would interpret them).
var goldenTemplates = []string{
	// short variables
	"%u", "%n", "%d", "%s", "%h", "%l", "%r", "%p", "%w", "%!", "%m", "%c", "%a", "%b", "%k", "%%",
	// every long name of the table, aliases included
	"%{user}", "%{username}", "%{domain}", "%{service}", "%{home}", "%{lip}", "%{rip}", "%{pid}",
	"%{password}", "%{mech}", "%{secured}", "%{lport}", "%{rport}", "%{cert}",
	"%{login_user}", "%{login_username}", "%{login_domain}", "%{session}",
	"%{real_lip}", "%{real_rip}", "%{real_lport}", "%{real_rport}",
	"%{domain_first}", "%{domain_last}", "%{master_user}", "%{session_pid}",
	"%{orig_user}", "%{orig_username}", "%{orig_domain}",
	"%{auth_user}", "%{auth_username}", "%{auth_domain}", "%{local_name}", "%{client_id}",
	"%{local_ip}", "%{remote_ip}", "%{local_port}", "%{remote_port}",
	"%{real_local_ip}", "%{real_remote_ip}", "%{real_local_port}", "%{real_remote_port}",
	"%{mechanism}", "%{original_user}", "%{original_username}", "%{original_domain}",
	// process level
	"%{hostname}", "%{uid}", "%{gid}",
	"%{env:AUTHD_VARS_TEST}", "%{env:AUTHD_VARS_NOPE}", "%{env:}", "%{env}",
	// literal text
	"plain", "a%%b", "x%L%", "50%%", "pre-%u-post", "%u/%n/%d", "%2.1%", "%%%%",
	// modifiers
	"%Lu", "%Uu", "%Ln", "%Ld", "%Un", "%E{local_name}", "%E{session}", "%Eu",
	"%Xa", "%Xb", "%X{real_lport}", "%Xu", "%Xp", "%X!",
	"%Ru", "%Hu", "%Hn", "%Nu", "%Nn", "%Mu", "%Mn", "%Du", "%Dd", "%DUd",
	"%T{session}", "%T{local_name}", "%Tu",
	"%LRu", "%RLu", "%ULu", "%MUu", "%UMu", "%LMu", "%ELu", "%TEu", "%RRu", "%MMu",
	"%LLLLLLLLLLu", "%LLLLLLLLLLLu", "%L{user}", "%U{orig_username}", "%M{domain}", "%L{orig_user}",
	// H and N: width is the modulus, offset the zero padding
	"%4Hu", "%256Hu", "%2.256Hu", "%1Hn", "%8.16Hu", "%.-3Hu", "%-2.256Hu", "%0Hu", "%4.0Hu", "%8Hu",
	"%4Nu", "%256Nu", "%2.256Nu", "%1Nn", "%.-3Nu", "%12.65536Nu", "%2.256HMu", "%2.256MHu", "%2.256HHu",
	// offsets and widths
	"%3u", "%.3u", "%2.3u", "%-3u", "%-3.2u", "%-1.2u", "%.-3u", "%.-100u", "%2.-3u", "%100.2u",
	"%-100u", "%-100.2u", "%2.1Mu", "%2.1Mn", "%0.2Mu", "%-2.2Mu", "%05a", "%05b", "%02a", "%08Xa",
	"%0Xn", "%3.05a", "%05u", "%.05a", "%-2.05a", "%10.05u", "%0u", "%00u", "%2.u", "%.u", "%-.u",
	"%--u", "%L2u", "%2.3{user}", "%-4{domain}", "%.-4{domain}", "%01.5u", "%1.-0u", "%.0-2u",
	// unknown variables (Dovecot fails the expansion)
	"%z", "%Z", "%{foo}", "%{foo:bar}", "%{}", "%Lz", "%2.3z", "%{Lu}", "%{u}", "%{USER}",
	"%{user:x}", "%{passdb}", "%{userdb}", "x%zy",
	// passdb/userdb fields
	"%{passdb:foo}", "%{passdb:nosuch}", "%{passdb:nosuch:dflt}", "%{passdb:nosuch:a:b}",
	"%{passdb:foo:dflt}", "%{userdb:home}", "%{userdb:uid}", "%{userdb:quota_rule}",
	"%{userdb:nosuch:d}", "%U{passdb:foo}", "%{passdb:}", "%2.1{passdb:foo}",
	// hashes
	"%{md4:user}", "%{md5:user}", "%{sha1:user}", "%{sha256:user}", "%{sha384:user}",
	"%{sha512:user}", "%{sha3-256:user}", "%{sha3-512:user}", "%{size:user}", "%{pkcs5:user}",
	"%{md5:username}", "%{md5:domain}", "%{md5:passdb:foo}", "%{md5:sha1:user}",
	"%{sha256:orig_user}", "%{md5:pid}", "%{md5:hostname}", "%{md5:env:AUTHD_VARS_TEST}",
	"%{md5:password}", "%U{md5:user}", "%4.8{sha1:user}", "%L{md5;format=base64:user}",
	"%{md5;rounds=2:user}", "%{sha1;rounds=3:user}", "%{md5;salt=x:user}", "%{md5;salt=%n:user}",
	"%{md5;salt=%{domain}:user}", "%{md5;rounds=2,salt=pepper:user}",
	"%{md5;salt=pepper,rounds=2:user}", "%{sha256;format=base64:user}",
	"%{sha256;format=hexuc:user}", "%{sha256;truncate=12:user}", "%{sha256;truncate=32:user}",
	"%{sha256;truncate=1:user}", "%{sha256;truncate=7:user}", "%{sha256;truncate=9:user}",
	"%{sha256;truncate=1000:user}", "%{sha256;truncate=0:user}",
	"%{sha1;truncate=12,format=base64:user}", "%{md5;foo=bar:user}", "%{md5;rounds:user}",
	"%{md5;;:user}", "%{pkcs5;rounds=1:user}", "%{pkcs5;rounds=3,salt=s:user}",
	"%{pkcs5;rounds=2,truncate=64:user}", "%{size;rounds=2:user}", "%{md5;salt=%z:user}",
	"%{sha1:md5:user}", "%{md5:if;a;eq;a;y;n}", "%{md5:lport}", "%{sha512;format=base64:domain}",
	// hash failures
	"%{md5;format=base64url:user}", "%{md5;rounds=0:user}", "%{md5;rounds=x:user}",
	"%{md5;truncate=x:user}", "%{md5;rounds=:user}", "%{MD5:user}", "%{Md5:user}",
	"%{md5:nosuch}", "%{md5:}", "%{md5}", "%{sha999:user}", "%{pkcs5;format=x:user}",
	// if
	"%{if;%u;eq;alice.smith@mail.example.com;yes;no}", "%{if;%n;ne;alice.smith;a;b}",
	"%{if;%a;==;143;Y;N}", "%{if;%a;>;100;big}", "%{if;%a;<;100;small;large}",
	"%{if;%a;<=;143;le;gt}", "%{if;%a;>=;144;ge;lt}", "%{if;%a;!=;143;ne;eq}",
	"%{if;%d;*;*.example.com;w1;w0}", "%{if;%d;!*;*.example.com;w1;w0}",
	"%{if;%n;~;^ali;r1;r0}", "%{if;%n;!~;^ali;r1;r0}", "%{if;%u;lt;b;lt;ge}",
	"%{if;%u;gt;b;gt;le}", "%{if;%u;le;b;le;gt}", "%{if;%u;ge;b;ge;lt}",
	"%{if;%{user};eq;%{user};same;diff}", "%U{if;%s;eq;imap;yes;no}", "%{if;a;eq;a;%u;%n}",
	"%{if;-5;<;3;neg;pos}", "%{if;%d;*;mail.?xample.com;q1;q0}", "%{if;%{passdb:foo};eq;bar;y;n}",
	"%{if;%{userdb:home};eq;/home/alice;H1;H0}", "%{if;a\\;b;eq;a\\;b;esc1;esc0}",
	"%{if;%s;eq;imap;%{sha1:user};-}", "%2.3{if;%s;ne;x;abcdef;-}", "%{IF;a;eq;a;y;n}",
	"%{if;%a;==;0143;y;n}", "%{if;%n;*;*i*;y;n}", "%{if;%n;~;[[:upper:]];y;n}",
	// if failures
	"%{if;%u;==;1;a;b}", "%{if;a;zz;b;c;d}", "%{if;a;eq}", "%{if;a;eq;b;c;d;e}", "%{if}",
	"%{if;%z;eq;a;b;c}", "%{if;a;eq;a;y;n;}", "%{if;%n;~;(;r1;r0}",
	// malformed: Parse rejects these, ParseLenient mirrors Dovecot
	"abc%", "abc%L", "abc%2.", "%{user", "x%{", "%{abc",
}
