namespace L2Balance.Tests.Common;

/// <summary>sockd.conf files from Dante's own documentation, which l2proxy must accept as they are.</summary>
public static class DanteExamples
{
    /// <summary>The sockd.conf of Dante's redundancy documentation, addresses filled in, its comment kept.</summary>
    public const string Redundancy = """
        errorlog: syslog
        logoutput: /var/log/sockd.log

        internal: 198.18.0.10 port = 1080
        external: 198.18.0.1 #IP-DANTEEXT2 for second node

        client pass {
                from: 0/0 to: 0/0
                log: error connect disconnect
        }

        socks pass {
                from: 0/0 to: 0/0
                log: error connect disconnect
        }
        """;
}
