// Behavioural model of the ECP5 MULT18X18D, for the subset RegisteredMultiplier uses.
//
// Yosys's ECP5 library (share/ecp5/cells_bb.v) has only a black box for it. This follows
// Lattice's simulation library for the ECP5 (MULT18X18D in ECP5U/M): each operand is
// extended to 36 bits by its SIGNEDx pin (registered with the operand), P = A * B; the
// input A/B, pipeline and output registers each either clocked or bypassed ("NONE"); a
// register with RESETMODE "SYNC" clears on its reset at the clock edge whatever its clock
// enable, else loads when its enable is high. Modelled: every register on CLK0 / CE0 /
// RST0, GSR "DISABLED", operands from A and B (SOURCEA = SOURCEB = 0), the C port unused.
// Any other configuration stops the simulation rather than be modelled wrongly.
`default_nettype none
module MULT18X18D (
    input  wire A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input  wire B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input  wire C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input  wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input  wire CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0,
    output wire P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
    output wire P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3,
    output wire P2, P1, P0
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter GSR = "ENABLED";
    parameter RESETMODE = "SYNC";
    parameter MULT_BYPASS = "DISABLED";
    parameter CAS_MATCH_REG = "FALSE";

    initial begin
        if (REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_PIPELINE_CE != "CE0"
                || REG_OUTPUT_CE != "CE0" || REG_INPUTA_RST != "RST0"
                || REG_INPUTB_RST != "RST0" || REG_PIPELINE_RST != "RST0"
                || REG_OUTPUT_RST != "RST0" || GSR != "DISABLED" || RESETMODE != "SYNC"
                || MULT_BYPASS != "DISABLED"
                || (REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
                || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
                || (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0")
                || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")) begin
            $display("MULT18X18D model: configuration not modelled");
            $finish_and_return(2);
        end
    end

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg  [17:0] a_reg = 0, b_reg = 0;
    reg         signeda_reg = 0, signedb_reg = 0;
    reg  [35:0] pipeline_reg = 0, output_reg = 0;

    always @(posedge CLK0) begin
        if (RST0) begin
            a_reg <= 0; signeda_reg <= 0; b_reg <= 0; signedb_reg <= 0;
        end else if (CE0) begin
            a_reg <= a; signeda_reg <= SIGNEDA; b_reg <= b; signedb_reg <= SIGNEDB;
        end
    end

    wire [17:0] a_in = REG_INPUTA_CLK == "NONE" ? a : a_reg;
    wire [17:0] b_in = REG_INPUTB_CLK == "NONE" ? b : b_reg;
    wire        a_signed = REG_INPUTA_CLK == "NONE" ? SIGNEDA : signeda_reg;
    wire        b_signed = REG_INPUTB_CLK == "NONE" ? SIGNEDB : signedb_reg;
    wire [35:0] a_ext = {{18{a_signed & a_in[17]}}, a_in};
    wire [35:0] b_ext = {{18{b_signed & b_in[17]}}, b_in};
    wire [35:0] product = a_ext * b_ext;

    always @(posedge CLK0) begin
        if (RST0) pipeline_reg <= 0; else if (CE0) pipeline_reg <= product;
    end
    wire [35:0] piped = REG_PIPELINE_CLK == "NONE" ? product : pipeline_reg;
    always @(posedge CLK0) begin
        if (RST0) output_reg <= 0; else if (CE0) output_reg <= piped;
    end
    wire [35:0] p = REG_OUTPUT_CLK == "NONE" ? piped : output_reg;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
            P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3,
            P2, P1, P0} = p;
endmodule
