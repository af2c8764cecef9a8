export const ME = "query Me { me { id username } }";
export const AVAILABLE =
  "query Available($u: String!) { usernameAvailable(username: $u) { available } }";
export const SEND = `mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id seq body }
}`;
export const MY_EVENTS = `subscription Mine {
  myEvents {
    __typename cursor
    ... on MessagePostedEvent { message { body } }
  }
}`;
