//! Debian's OpenLDAP server (`slapd`, `ldapadd` from ldap-utils), started by the test on
//! loopback with a configuration of its own: LDAP (StartTLS) and LDAPS ports, a
//! certificate made here, the memberOf overlay (as Active Directory has), the directory of
//! [`DATA`].

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::DataDir;

pub const SUFFIX: &str = "dc=example,dc=org";
const ADMIN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PASSWORD: &str = "admin-pw";
/// The service account of search-then-bind (a plain entry with a password).
pub const SERVICE: &str = "cn=convene,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "service-pw";

/// alice: hosts and moderators; bob: hosts; carol: hosts, disabled; eve: no group;
/// `d(a)n` and `o,neil`: names that need escaping, hosts.
const DATA: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: cn=convene,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: convene
userPassword: service-pw

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Liddell
displayName: Alice Liddell
mail: alice@example.org
userPassword: alice-pw

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Builder
userPassword: bob-pw

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Gone
employeeType: disabled
userPassword: carol-pw

dn: uid=eve,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: eve
cn: Eve
sn: Outsider
userPassword: eve-pw

dn: uid=d(a)n,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: d(a)n
cn: Dan
sn: Parens
userPassword: dan-pw

dn: uid=o\\,neil,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: o,neil
cn: O'Neil
sn: Comma
userPassword: oneil-pw

dn: cn=hosts,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: hosts
member: uid=alice,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org
member: uid=carol,ou=people,dc=example,dc=org
member: uid=d(a)n,ou=people,dc=example,dc=org
member: uid=o\\,neil,ou=people,dc=example,dc=org

dn: cn=moderators,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: moderators
member: uid=alice,ou=people,dc=example,dc=org
";

pub struct Slapd {
    child: Child,
    dir: DataDir,
    pub ldap: SocketAddr,
    pub ldaps: SocketAddr,
}

impl Slapd {
    pub fn start() -> Self {
        let dir = DataDir::new();
        let root = dir.path();
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        std::fs::write(root.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(root.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        std::fs::create_dir(root.join("db")).unwrap();
        let r = root.display();
        let config = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {r}/slapd.pid
TLSCertificateFile {r}/cert.pem
TLSCertificateKeyFile {r}/key.pem
database mdb
maxsize 10485760
suffix \"{SUFFIX}\"
rootdn \"{ADMIN}\"
rootpw {ADMIN_PASSWORD}
directory {r}/db
overlay memberof
access to attrs=userPassword by anonymous auth by * none
access to * by * read
"
        );
        std::fs::write(root.join("slapd.conf"), config).unwrap();
        std::fs::write(root.join("data.ldif"), DATA).unwrap();
        let (ldap, ldaps) = (free_port(), free_port());
        let child = Command::new("slapd")
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://{ldap}/ ldaps://{ldaps}/"))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd (apt-get install slapd ldap-utils)");
        let slapd = Self {
            child,
            dir,
            ldap,
            ldaps,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(ldap).is_err() {
            assert!(Instant::now() < deadline, "slapd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let added = Command::new("ldapadd")
            .args(["-x", "-H", &format!("ldap://{ldap}"), "-D", ADMIN, "-w"])
            .arg(ADMIN_PASSWORD)
            .arg("-f")
            .arg(slapd.dir.path().join("data.ldif"))
            .output()
            .expect("ldapadd (apt-get install ldap-utils)");
        assert!(
            added.status.success(),
            "ldapadd: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        slapd
    }

    /// The CA file that verifies the server (its self-signed certificate).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
