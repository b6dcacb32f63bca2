package vars

// golden24Templates are the templates whose expansion is recorded from a
// real Dovecot 2.4 in testdata/golden24.json (see live24_test.go). Each
// sits in the fields { } of its own passdb and userdb, so a template whose
// expansion fails only loses its own field. Every one must be accepted by
// Dovecot's configuration parser (a syntax error there stops the whole
// instance), and none may contain a newline.
var golden24Templates = []string{
	// the request table
	"%{user}", "%{protocol}", "%{home}", "%{local_ip}", "%{remote_ip}", "%{client_pid}",
	"%{password}", "%{id}", "%{mechanism}", "%{secured}", "%{local_port}", "%{remote_port}",
	"%{cert}", "%{login_user}", "%{session}", "%{real_local_ip}", "%{real_remote_ip}",
	"%{real_local_port}", "%{real_remote_port}", "%{domain_first}", "%{domain_last}",
	"%{master_user}", "%{session_pid}", "%{original_user}", "%{auth_user}", "%{local_name}",
	"%{client_id}", "%{ssl_ja3_hash}", "%{owner_user}",
	// 2.3 names that 2.4 no longer has
	"%{username}", "%{domain}", "%{service}", "%{lip}", "%{rip}", "%{pid}", "%{mech}",
	"%{orig_user}", "%{hostname}", "%{uid}", "%{gid}", "%{login_username}", "%{USER}",
	// providers
	"%{passdb:foo}", "%{passdb:nosuch}", "%{passdb:}", "%{userdb:quota_rule}", "%{userdb:home}",
	"%{userdb:nosuch}", "%{env:AUTHD_VARS_TEST}", "%{env:AUTHD_VARS_NOPE}", "%{env:}",
	"%{process:pid}", "%{process:uid}", "%{process:gid}", "%{process:nosuch}",
	"%{system:hostname}", "%{system:cpu_count}", "%{system:os}", "%{system:os-version}",
	"%{system:nosuch}", "%{dovecot:name}", "%{dovecot:version}", "%{dovecot:nosuch}",
	"%{event:nosuch}", "%{date:nosuch}", "%{time:nosuch}", "%{generate:nosuch}",
	"%{nosuch:x}", "%{passwd_file:uid}", "%{passwd_file:home}", "%{passwd_file:user}",
	"%{passwd_file:foo}", "%{passwd_file:nosuch}", "%{passwd_file:userdb_quota_rule}",
	"%{passdb:foo:bar}", "%{ldap:uid}",
	// literal text, and 2.3 syntax read as 2.4
	"%", "%%", "a%%b", "50%", "%u", "%Lu", "%2.1Mu", "%%{user}", "%%%{user}", "%{user}%",
	"pre-%{user}-post", "%{user}/%{user | username}", "%{user}y", "y%{user}", "%{user}yy",
	"x%{user}y%{user}z", "%{user}-y", "y%", "%y", "%{ user }", "%{user|lower}",
	"%{ user | lower }", "%{user	|	upper}",
	"%{if;a;eq;a;y;n}", "%{sha1:user}", "%{L:user}",
	// case, user and domain
	"%{user | lower}", "%{user | upper}", "%{original_user | lower}", "%{original_user | upper}",
	"%{user | username}", "%{user | domain}", "%{user | username | upper}", "%{user | domain | upper}",
	"%{original_user | username}", "%{original_user | domain}", "%{login_user | username}",
	"%{login_user | domain}", "%{master_user | domain}", "%{session | username}", "%{session | domain}",
	"%{user | domain | username}",
	// filters without a value (the first name is not a variable)
	"%{lower}", "%{upper}", "%{md5}", "%{hex}", "%{reverse}", "%{default}",
	"%{default('d')}", "%{literal}", "%{literal('x')}", "%{literal(5)}", "%{literal(-5)}",
	"%{literal(007)}", "%{literal(x)}", "%{literal(user)}", "%{lookup}", "%{lookup('user')}",
	"%{lookup('nosuch')}", "%{lookup(protocol)}", "%{lookup('passdb:foo')}",
	"%{concat('a', 'b')}", "%{calculate}",
	// default
	"%{nosuch | default('x')}", "%{nosuch | default}", "%{home | default('none')}",
	"%{user | default('none')}", "%{home | default(user)}", "%{home | default(5)}",
	"%{nosuch | lower | default('x')}", "%{nosuch | default('x') | upper}",
	"%{home | default('a', 'b')}", "%{home | default(x='a')}", "%{passdb:nosuch | default('dflt')}",
	"%{user | substr(100) | default('x')}", "%{user | nosuchfilter | default('x')}",
	// strings and escapes
	"%{literal('a b')}", "%{literal(\"d q\")}", "%{literal('a\\tb')}",
	"%{literal('a\\nb')}", "%{literal('a\\\\b')}", "%{literal('a\\'b')}", "%{literal('a\\\"b')}",
	"%{literal('\\x41\\x42')}", "%{literal('\\101\\060')}", "%{literal('')}", "%{literal('}')}",
	"%{literal('|')}", "%{literal('%{user}')}",
	// concat
	"%{user | concat('-', protocol)}", "%{protocol | concat(user, '/', 5)}", "%{user | concat(nosuch)}",
	"%{user | concat}",
	// arithmetic
	"%{local_port + 1}", "%{local_port - 1}", "%{local_port * 2}", "%{local_port / 2}",
	"%{local_port % 100}", "%{local_port + -1}", "%{local_port - -1}", "%{local_port / 0}",
	"%{local_port % 0}", "%{local_port + remote_port}", "%{local_port + nosuch}", "%{user + 1}",
	"%{client_pid * 10}", "%{remote_port % 7 | hex}", "%{user | md5 % 16}", "%{user | sha1 % 256}",
	"%{user | md5 + 1}", "%{literal('-7') / 2}", "%{literal('-7') % 2}",
	"%{calculate(0, 5)}", "%{local_port | calculate(2, 3)}",
	// hashes
	"%{user | md5}", "%{user | sha1}", "%{user | sha256}", "%{user | sha384}", "%{user | sha512}",
	"%{user | hash('md4')}", "%{user | hash('md5')}", "%{user | hash('sha3-256')}",
	"%{user | hash('sha3-512')}", "%{user | hash('size')}", "%{user | hash('nosuch')}",
	"%{user | hash('MD5')}", "%{user | hash}", "%{user | hash(rounds=2)}", "%{user | hash(protocol)}",
	"%{user | md5(rounds=2)}", "%{user | md5(rounds=0)}", "%{user | md5(salt='pepper')}",
	"%{user | md5(salt=protocol)}", "%{user | md5(rounds=2, salt='x')}", "%{user | md5(1)}",
	"%{user | md5(foo=1)}", "%{user | hash('sha256', rounds=3)}", "%{user | hash('md5', 'x')}",
	"%{password | sha256}", "%{password | sha256 | hex}", "%{password | sha256 | hexlify}",
	"%{password | md5 | base64}", "%{user | md5 | upper}", "%{user | md5 | reverse}",
	"%{user | md5 | concat('x')}", "%{user | md5 | lower}", "%{user | md5 | md5}",
	"%{user | md5 | substr(0, 4)}", "%{user | md5 | substr(100)}", "%{user | md5 | truncate(4)}",
	"%{user | md5 | truncate(bits=12)}", "%{user | md5 | truncate(bits=0)}", "%{user | sha1 | text}",
	"%{user | md5 | lenumber}", "%{user | md5 | truncate(8) | benumber}",
	"%{user | md5 | truncate(4) | lenumber}", "%{user | md5 | truncate(2) | benumber}",
	"%{user | md5 | truncate(1) | lenumber}", "%{user | md5 | truncate(3) | lenumber}",
	// base64
	"%{user | base64}", "%{user | base64(pad=0)}", "%{user | base64(url=1)}", "%{local_name | base64(url=1)}",
	"%{local_name | base64(url=1, pad=0)}", "%{user | base64(1)}",
	"%{user | base64(x=1)}", "%{literal('YWxpY2U=') | unbase64}", "%{literal('YWxpY2U') | unbase64}",
	"%{literal('YWxp!Y2U=') | unbase64}", "%{literal('YWxpY2U=') | unbase64 | text}",
	"%{user | base64 | unbase64 | text}", "%{literal('_-8') | unbase64(url=1)}",
	"%{literal('YQ') | unbase64(pad=0)}", "%{literal('YQ') | unbase64(pad=2)}",
	// hex
	"%{local_port | hex}", "%{local_port | hex(8)}", "%{local_port | hex(-8)}", "%{local_port | hex(1)}",
	"%{user | hex}", "%{literal('18446744073709551615') | hex}", "%{literal('18446744073709551616') | hex}",
	"%{literal('-1') | hex}", "%{literal('ff') | unhex}", "%{literal('FF') | unhex}",
	"%{literal('xyz') | unhex}", "%{literal('') | unhex}", "%{user | hexlify}", "%{user | hexlify(4)}",
	"%{user | hexlify(80)}", "%{user | hexlify(-1)}", "%{literal('616263') | unhexlify}",
	"%{literal('616263') | unhexlify | text}", "%{literal('6162f') | unhexlify}",
	"%{literal('zz') | unhexlify}", "%{local_port | hex(x)}",
	// substr, truncate, reverse
	"%{user | substr(0)}", "%{user | substr(1)}", "%{user | substr(-3)}", "%{user | substr(1, 3)}",
	"%{user | substr(-3, 2)}", "%{user | substr(1, -3)}", "%{user | substr(5, -30)}",
	"%{user | substr(0, 0)}", "%{user | substr(100)}", "%{user | substr(-100)}", "%{user | substr(0, 100)}",
	"%{user | substr}", "%{user | substr(1, 2, 3)}", "%{user | substr(len=2)}", "%{user | substr('a')}",
	"%{user | truncate(3)}", "%{user | truncate(0)}", "%{user | truncate(-1)}", "%{user | truncate}",
	"%{user | truncate(bits=12)}", "%{user | truncate(bits=16)}", "%{user | truncate(bits=1000)}",
	"%{user | reverse}", "%{user | reverse | reverse}",
	// ldap_dn, text, list
	"%{user | domain | ldap_dn}", "%{user | ldap_dn}", "%{literal('a.b.c') | ldap_dn}",
	"%{local_name | text}", "%{literal('a\\tb\\x01c') | text}", "%{literal('\\xe4') | text}",
	"%{literal('a\\xc3') | text}", "%{literal('\\xc3\\xa4x') | text}",
	"%{literal('a\\tb\\tc') | list}", "%{literal('a\\tb\\tc') | list(';')}", "%{literal('a\\tb') | list(sep)}",
	"%{user | list}", "%{literal('a\\x01tb\\tc') | list(':')}", "%{literal('') | list}",
	// index
	"%{user | index('.', 0)}", "%{user | index('.', 1)}", "%{user | index('.', -1)}",
	"%{user | index('.', 5)}", "%{user | index('@', 1)}", "%{user | index('.')}", "%{user | index}",
	"%{user | index('smith', 1)}", "%{user | index('.', -4)}",
	// fill
	"%{user | lfill(40)}", "%{user | rfill(40)}", "%{user | lfill(40, '.')}", "%{user | rfill(36, 'ab')}",
	"%{user | lfill(3)}", "%{user | lfill(0)}", "%{user | lfill}", "%{local_port | lfill(6)}",
	// if
	"%{if('a', 'eq', 'a', 'yes', 'no')}", "%{if('a', 'ne', 'a', 'yes', 'no')}",
	"%{user | if('eq', 'alice.smith@mail.example.com', 'Y', 'N')}", "%{user | if('ne', 'x', 'Y', 'N')}",
	"%{user | if('lt', 'b', 'lt', 'ge')}", "%{user | if('gt', 'b', 'gt', 'le')}",
	"%{user | if('le', 'b', 'le', 'gt')}", "%{user | if('ge', 'b', 'ge', 'lt')}",
	"%{local_port | if('==', 143, 'imap', 'other')}", "%{local_port | if('!=', 143, 'a', 'b')}",
	"%{local_port | if('<', 1000, 'low', 'high')}", "%{local_port | if('<=', 143, 'le', 'gt')}",
	"%{local_port | if('>', 1000, 'high', 'low')}", "%{local_port | if('>=', 144, 'ge', 'lt')}",
	"%{local_port | if('==', '143', 'a', 'b')}", "%{user | if('==', 1, 'a', 'b')}",
	"%{user | if('*', '*@mail.example.com', 'w1', 'w0')}", "%{user | if('!*', '*@mail.example.com', 'w1', 'w0')}",
	"%{user | if('*', 'alice.?mith*', 'q1', 'q0')}", "%{user | if('~', '^alice', 'r1', 'r0')}",
	"%{user | if('!~', '^alice', 'r1', 'r0')}", "%{user | if('~', '[[:upper:]]', 'r1', 'r0')}",
	"%{user | if('~', '(', 'r1', 'r0')}", "%{user | if('zz', 'a', 'b', 'c')}", "%{user | if('eq', 'a')}",
	"%{user | if('eq', 'a', 'b', 'c', 'd')}", "%{user | if('eq', user, 'same', 'diff')}",
	"%{user | if('eq', protocol, 'same', 'diff')}", "%{protocol | if('eq', 'imap', user, protocol)}",
	"%{user | if('eq', 5, 'a', 'b')}", "%{user | if(op, 'a', 'b', 'c')}",
	"%{if(local_port, '==', 143, 'Y', 'N')}", "%{if(user, 'eq', 'x', 'Y', 'N')}",
	"%{if('a', 'eq', 'b', 'Y')}", "%{if}", "%{user | if('eq', 'a', 'b', 'c') | upper}",
	"%{home | if('eq', '', 'empty', 'set')}", "%{user | if('eq', 'x', 'y', nosuch)}",
	"%{user | if('ne', 'x', nosuch, 'n')}",
	// regexp
	"%{user | regexp('^([^@]*)@(.*)$', '\\\\2')}", "%{user | regexp('@', 'AT')}",
	"%{user | regexp('nomatch', 'X')}", "%{user | regexp('(a)(l)', '\\\\2\\\\1')}",
	"%{user | regexp('smith', '\\\\0!')}", "%{user | regexp('(x)?alice', '[\\\\1]')}",
	"%{user | regexp('a', '\\\\5')}", "%{user | regexp('(')}", "%{user | regexp('(', 'x')}",
	"%{user | regexp}", "%{user | regexp('a', 'b', 'c')}", "%{user | regexp('^(.*)@', '\\\\1') | upper}",
	"%{user | regexp('(.*)', '\\2')}",
	// numbers from bytes
	"%{literal('a') | lenumber}", "%{literal('ab') | benumber}", "%{literal('ab') | lenumber}",
	"%{literal('abcd') | benumber}", "%{literal('abc') | benumber}", "%{user | benumber}",
	// errors and unknown filters
	"%{user | nosuchfilter}", "%{user | lower(1)}", "%{user | upper(x=1)}", "%{user | username(1)}",
	"%{user | domain('x')}", "%{user | encrypt}", "%{user | decrypt}", "%{nosuch}",
	"%{nosuch | lower}", "%{user | lower | nosuchfilter}", "%{nosuch}%{user}", "%{user}%{nosuch}",
	"%{user | text(1)}", "%{user | reverse(1)}", "%{user | ldap_dn(1)}", "%{user | unhex(1)}",
	// names with the characters a name may hold
	"%{passdb:foo.bar}", "%{passdb:a/b;c-d}", "%{env:AUTHD_VARS_TEST | lower}",
	"%{env:AUTHD_VARS_TEST | upper | reverse}", "%{user-x}", "%{user;x}",
}
