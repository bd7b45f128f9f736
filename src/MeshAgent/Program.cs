using Mesh.Agent.Cli;

var parse = AgentCli.Build().Parse(args);
if (parse.Errors.Count == 0) return await parse.InvokeAsync();
Console.Error.WriteLine($"mesh-agent: {parse.Errors[0].Message} (see --help)");
return 2;
