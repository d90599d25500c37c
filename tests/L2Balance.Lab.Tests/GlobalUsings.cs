// Transitional, for CheckConfigTests.cs and MetricsTests.cs (rewritten in another branch): remove
// both lines once those files sit in Proxy/ and call Socks5Client by its name.
global using L2Balance.Lab.Tests.Proxy;
global using RawSocks5 = L2Balance.Lab.Socks5Client;
