using System.Net;
using System.Text;
using Mesh.Traversal.PortMapping;

namespace Mesh.Traversal.Tests;

public sealed class UpnpIgdTests
{
    // miniupnpd 2.3.1's answer and description, as it gave them in a namespace test (trimmed to the services).
    private const string Answer = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
        "SERVER: Debian UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n";

    private const string Description = """
        <?xml version="1.0"?>
        <root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>
        <serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service></serviceList>
        <deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><deviceList><device>
        <serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>/ctl/IPConn</controlURL></service></serviceList>
        </device></deviceList></device></deviceList></device></root>
        """;

    [Fact]
    public void TheSearchAnswerAndDescriptionLeadToTheWanConnectionsControlUrl()
    {
        Assert.StartsWith("M-SEARCH * HTTP/1.1\r\n", Encoding.ASCII.GetString(UpnpIgd.SearchRequest(1)));
        Assert.True(UpnpIgd.TryReadLocation(Encoding.ASCII.GetBytes(Answer), out var location));
        Assert.Equal("http://192.168.1.1:5000/rootDesc.xml", location!.ToString());
        var service = UpnpIgd.FindConnectionService(Description, location, Gateway, out var problem);
        Assert.Null(problem);
        Assert.Equal("urn:schemas-upnp-org:service:WANIPConnection:2", service!.ServiceType);
        Assert.Equal("http://192.168.1.1:5000/ctl/IPConn", service.ControlUrl.ToString());
    }

    [Fact]
    public void AddPortMappingCarriesItsArgumentsAndAFaultIsRead()
    {
        var service = new UpnpService("urn:schemas-upnp-org:service:WANIPConnection:1", new Uri("http://192.168.1.1:5000/ctl/IPConn"));
        var envelope = UpnpIgd.AddPortMapping(service, 41641, IPAddress.Parse("192.168.1.10"), 41641, 3600, "mesh <agent>");
        Assert.Contains("<u:AddPortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">", envelope);
        Assert.Contains("<NewExternalPort>41641</NewExternalPort><NewProtocol>UDP</NewProtocol>", envelope);
        Assert.Contains("<NewInternalClient>192.168.1.10</NewInternalClient>", envelope);
        Assert.Contains("<NewPortMappingDescription>mesh &lt;agent&gt;</NewPortMappingDescription>", envelope);
        Assert.Equal("\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"", UpnpIgd.SoapAction(service, "AddPortMapping"));

        var fault = UpnpIgd.ReadReply("""
            <?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode>
            <faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode>
            <errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>
            """);
        Assert.Equal(UpnpIgd.ConflictInMappingEntry, fault.ErrorCode);
        Assert.Equal("ConflictInMappingEntry", fault.Error);

        var ok = UpnpIgd.ReadReply("""
            <?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:x">
            <NewExternalIPAddress>172.32.1.2</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>
            """);
        Assert.True(ok.Succeeded);
        Assert.Equal("172.32.1.2", ok.Values["NewExternalIPAddress"]);
    }

    private static readonly IPAddress Gateway = IPAddress.Parse("192.168.1.1");

    [Fact]
    public void OnlyTheGatewaysOwnAddressIsBelieved()
    {
        Assert.True(UpnpIgd.IsOnGateway(new Uri("http://192.168.1.1:5000/rootDesc.xml"), Gateway));
        Assert.False(UpnpIgd.IsOnGateway(new Uri("http://192.168.1.66:5000/rootDesc.xml"), Gateway));
        Assert.False(UpnpIgd.IsOnGateway(new Uri("http://router.lan:5000/rootDesc.xml"), Gateway));
        Assert.False(UpnpIgd.IsOnGateway(new Uri("https://192.168.1.1/rootDesc.xml"), Gateway));
        // A description that points its control URL elsewhere (an internal service, the metadata endpoint) is refused.
        var elsewhere = Description.Replace("<controlURL>/ctl/IPConn</controlURL>", "<controlURL>http://169.254.169.254/latest</controlURL>");
        Assert.Null(UpnpIgd.FindConnectionService(elsewhere, new Uri("http://192.168.1.1:5000/rootDesc.xml"), Gateway, out var problem));
        Assert.Contains("off the gateway", problem);
        var rebased = Description.Replace("<root xmlns=\"urn:schemas-upnp-org:device-1-0\">", "<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><URLBase>http://10.0.0.9:80/</URLBase>");
        Assert.NotEqual(Description, rebased);
        Assert.Null(UpnpIgd.FindConnectionService(rebased, new Uri("http://192.168.1.1:5000/rootDesc.xml"), Gateway, out _));
    }

    [Fact]
    public void DtdsAndOversizedDocumentsAreRefused()
    {
        const string billionLaughs = """
            <?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
            <root>&lol2;</root>
            """;
        Assert.Null(UpnpIgd.FindConnectionService(billionLaughs, new Uri("http://192.168.1.1/"), Gateway, out var dtd));
        Assert.Contains("DTD", dtd);
        Assert.Contains("DTD", UpnpIgd.ReadReply(billionLaughs).Error);
        var huge = "<root>" + new string('x', UpnpIgd.MaxDocument) + "</root>";
        Assert.Null(UpnpIgd.FindConnectionService(huge, new Uri("http://192.168.1.1/"), Gateway, out var tooLong));
        Assert.Contains("not XML this agent takes", tooLong);
    }

    [Fact]
    public void BadAnswersAreRefusedWithAReason()
    {
        Assert.False(UpnpIgd.TryReadLocation(Encoding.ASCII.GetBytes("NOTIFY * HTTP/1.1\r\nLOCATION: http://x/\r\n\r\n"), out _));
        Assert.False(UpnpIgd.TryReadLocation(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nLOCATION: file:///etc/passwd\r\n\r\n"), out _));
        Assert.False(UpnpIgd.TryReadLocation([0xFF, 0x00], out _));
        Assert.Null(UpnpIgd.FindConnectionService("<root><unclosed>", new Uri("http://192.168.1.1/"), Gateway, out var notXml));
        Assert.Contains("not XML this agent takes (line 1", notXml);
        Assert.Null(UpnpIgd.FindConnectionService("<root/>", new Uri("http://192.168.1.1/"), Gateway, out var none));
        Assert.Equal("the gateway offers no WANIPConnection or WANPPPConnection service", none);
        Assert.Contains("not XML", UpnpIgd.ReadReply("garbage").Error);
        Assert.Equal("the gateway's answer has no SOAP body", UpnpIgd.ReadReply("<a/>").Error);
    }
}
