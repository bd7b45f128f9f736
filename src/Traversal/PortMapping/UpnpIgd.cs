using System.Globalization;
using System.Net;
using System.Text;
using System.Xml;

namespace Mesh.Traversal.PortMapping;

/// <summary>A WAN connection service of an Internet Gateway Device: where its SOAP actions go.</summary>
public sealed record UpnpService(string ServiceType, Uri ControlUrl);

/// <summary>A SOAP action's outcome: its output arguments, or the UPnP error code and description.</summary>
public sealed record UpnpReply(IReadOnlyDictionary<string, string> Values, int? ErrorCode, string? Error)
{
    public bool Succeeded => ErrorCode is null;
}

/// <summary>
/// UPnP-IGD without I/O: the SSDP search and its answer, the device description's WAN connection service,
/// and the SOAP envelopes of GetExternalIPAddress, AddPortMapping and DeletePortMapping. Anything on the LAN can
/// answer an SSDP search, so only the default gateway is believed: its answers, and URLs on its address alone.
/// Documents are parsed with DTDs prohibited (no entity expansion) and at most <see cref="MaxDocument"/> long.
/// </summary>
public static class UpnpIgd
{
    /// <summary>The most a description or SOAP answer may hold; real gateways send a few KiB.</summary>
    public const int MaxDocument = 64 * 1024;
    public static readonly IPEndPoint SsdpGroup = new(IPAddress.Parse("239.255.255.250"), 1900);

    /// <summary>UPnP error 718: the external port is mapped to another client already.</summary>
    public const int ConflictInMappingEntry = 718;

    /// <summary>UPnP error 725: the gateway only takes mappings without a lease (duration 0).</summary>
    public const int OnlyPermanentLeasesSupported = 725;

    private const string SoapNamespace = "http://schemas.xmlsoap.org/soap/envelope/";

    private static readonly string[] ConnectionServices =
    [
        "urn:schemas-upnp-org:service:WANIPConnection:2",
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "urn:schemas-upnp-org:service:WANPPPConnection:1",
    ];

    /// <summary>An SSDP M-SEARCH for gateways of either IGD version.</summary>
    public static byte[] SearchRequest(int version) => Encoding.ASCII.GetBytes(
        "M-SEARCH * HTTP/1.1\r\n" +
        "HOST: 239.255.255.250:1900\r\n" +
        "MAN: \"ssdp:discover\"\r\n" +
        "MX: 2\r\n" +
        $"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:{version}\r\n\r\n");

    /// <summary>The description URL of an SSDP answer ("HTTP/1.1 200 OK" with a LOCATION header); false for anything else.</summary>
    public static bool TryReadLocation(ReadOnlySpan<byte> answer, out Uri? location)
    {
        location = null;
        var text = Encoding.ASCII.GetString(answer);
        var lines = text.Split("\r\n");
        if (lines.Length == 0 || !lines[0].StartsWith("HTTP/1.1 200", StringComparison.Ordinal)) return false;
        foreach (var line in lines)
        {
            var colon = line.IndexOf(':');
            if (colon <= 0 || !line.AsSpan(0, colon).Trim().Equals("LOCATION", StringComparison.OrdinalIgnoreCase)) continue;
            return Uri.TryCreate(line[(colon + 1)..].Trim(), UriKind.Absolute, out location) && location.Scheme == Uri.UriSchemeHttp;
        }
        return false;
    }

    /// <summary>Whether a URL is plain HTTP to the gateway's own address: the only place the agent fetches from or posts to.</summary>
    public static bool IsOnGateway(Uri url, IPAddress gateway) =>
        url.Scheme == Uri.UriSchemeHttp && IPAddress.TryParse(url.Host.Trim('[', ']'), out var host) && host.Equals(gateway);

    /// <summary>The best WAN connection service the gateway's device description offers, or null (with the reason) when it has none.</summary>
    public static UpnpService? FindConnectionService(string description, Uri location, IPAddress gateway, out string? problem)
    {
        if (Load(description, "device description", out problem) is not { } document) return null;
        var baseUrl = location;
        if (Child(document.DocumentElement, "URLBase")?.InnerText.Trim() is { Length: > 0 } declared && Uri.TryCreate(declared, UriKind.Absolute, out var parsed)) baseUrl = parsed;
        foreach (var wanted in ConnectionServices)
        {
            foreach (XmlElement service in document.GetElementsByTagName("service", "*"))
            {
                if (Child(service, "serviceType")?.InnerText.Trim() != wanted) continue;
                if (Child(service, "controlURL")?.InnerText.Trim() is not { Length: > 0 } control) continue;
                if (!Uri.TryCreate(baseUrl, control, out var controlUrl)) continue;
                if (!IsOnGateway(controlUrl, gateway))
                {
                    problem = $"the description names a control URL off the gateway ({controlUrl}); refused";
                    return null;
                }
                return new UpnpService(wanted, controlUrl);
            }
        }
        problem = "the gateway offers no WANIPConnection or WANPPPConnection service";
        return null;
    }

    /// <summary>Parses a gateway's document with DTDs prohibited and its size bounded; null (and why) when it cannot be taken.</summary>
    private static XmlDocument? Load(string text, string what, out string? problem)
    {
        problem = null;
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, MaxCharactersInDocument = MaxDocument };
        var document = new XmlDocument { XmlResolver = null };
        try
        {
            using var reader = XmlReader.Create(new StringReader(text), settings);
            document.Load(reader);
            return document;
        }
        catch (XmlException ex)
        {
            problem = $"the {what} is not XML this agent takes (line {ex.LineNumber}: {ex.Message})";
            return null;
        }
    }

    /// <summary>The SOAPAction header's value for an action of the service.</summary>
    public static string SoapAction(UpnpService service, string action) => $"\"{service.ServiceType}#{action}\"";

    public static string GetExternalIPAddress(UpnpService service) => Envelope(service, "GetExternalIPAddress", []);

    public static string AddPortMapping(UpnpService service, int externalPort, IPAddress internalClient, int internalPort, uint leaseSeconds, string description) =>
        Envelope(service, "AddPortMapping",
        [
            ("NewRemoteHost", ""),
            ("NewExternalPort", externalPort.ToString(CultureInfo.InvariantCulture)),
            ("NewProtocol", "UDP"),
            ("NewInternalPort", internalPort.ToString(CultureInfo.InvariantCulture)),
            ("NewInternalClient", internalClient.ToString()),
            ("NewEnabled", "1"),
            ("NewPortMappingDescription", description),
            ("NewLeaseDuration", leaseSeconds.ToString(CultureInfo.InvariantCulture)),
        ]);

    public static string DeletePortMapping(UpnpService service, int externalPort) =>
        Envelope(service, "DeletePortMapping",
        [
            ("NewRemoteHost", ""),
            ("NewExternalPort", externalPort.ToString(CultureInfo.InvariantCulture)),
            ("NewProtocol", "UDP"),
        ]);

    /// <summary>Reads an action's response or SOAP fault (UPnP errors come as HTTP 500 with a fault body).</summary>
    public static UpnpReply ReadReply(string body)
    {
        if (Load(body, "gateway's answer", out var problem) is not { } document) return new UpnpReply(new Dictionary<string, string>(), -1, problem);
        var envelopeBody = document.GetElementsByTagName("Body", SoapNamespace);
        if (envelopeBody.Count == 0 || envelopeBody[0] is not XmlElement soapBody || soapBody.FirstChild is not XmlElement response)
        {
            return new UpnpReply(new Dictionary<string, string>(), -1, "the gateway's answer has no SOAP body");
        }
        if (response.LocalName == "Fault")
        {
            var code = Descendant(response, "errorCode")?.InnerText.Trim();
            var text = Descendant(response, "errorDescription")?.InnerText.Trim() ?? Descendant(response, "faultstring")?.InnerText.Trim() ?? "fault";
            return new UpnpReply(new Dictionary<string, string>(), int.TryParse(code, CultureInfo.InvariantCulture, out var number) ? number : -1, text);
        }
        var values = new Dictionary<string, string>();
        foreach (XmlNode child in response.ChildNodes)
        {
            if (child is XmlElement element) values[element.LocalName] = element.InnerText.Trim();
        }
        return new UpnpReply(values, null, null);
    }

    private static string Envelope(UpnpService service, string action, (string Name, string Value)[] arguments)
    {
        var text = new StringBuilder();
        text.Append("<?xml version=\"1.0\"?>\r\n");
        text.Append($"<s:Envelope xmlns:s=\"{SoapNamespace}\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>");
        text.Append($"<u:{action} xmlns:u=\"{service.ServiceType}\">");
        foreach (var (name, value) in arguments) text.Append($"<{name}>{System.Security.SecurityElement.Escape(value)}</{name}>");
        text.Append($"</u:{action}></s:Body></s:Envelope>\r\n");
        return text.ToString();
    }

    private static XmlElement? Child(XmlNode? parent, string localName)
    {
        if (parent is null) return null;
        foreach (XmlNode child in parent.ChildNodes)
        {
            if (child is XmlElement element && element.LocalName == localName) return element;
        }
        return null;
    }

    private static XmlElement? Descendant(XmlElement root, string localName) =>
        root.GetElementsByTagName(localName, "*") is { Count: > 0 } found ? found[0] as XmlElement : null;
}
